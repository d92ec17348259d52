import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

/** Parses `--flag value` and `--switch` arguments the way the Kafka CLI tools take them. */
final class Flags {
    private final Map<String, List<String>> values = new HashMap<>();

    Flags(String[] args, String... switches) {
        List<String> switchList = List.of(switches);
        for (int i = 0; i < args.length; i++) {
            String name = args[i];
            if (!name.startsWith("--")) {
                throw new IllegalArgumentException("unexpected argument " + name);
            }
            if (switchList.contains(name)) {
                values.computeIfAbsent(name, k -> new ArrayList<>()).add("true");
            } else {
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException(name + " needs a value");
                }
                values.computeIfAbsent(name, k -> new ArrayList<>()).add(args[++i]);
            }
        }
    }

    boolean has(String name) {
        return values.containsKey(name);
    }

    String get(String name) {
        List<String> found = values.get(name);
        if (found == null) {
            throw new IllegalArgumentException("missing " + name);
        }
        return found.get(found.size() - 1);
    }

    String get(String name, String fallback) {
        return has(name) ? get(name) : fallback;
    }

    List<String> all(String name) {
        return values.getOrDefault(name, List.of());
    }

    /** `--property k=v` (or any repeated k=v flag) as a map. */
    Map<String, String> pairs(String name) {
        Map<String, String> pairs = new HashMap<>();
        for (String pair : all(name)) {
            for (String item : pair.split(",")) {
                int eq = item.indexOf('=');
                if (eq > 0) {
                    pairs.put(item.substring(0, eq), item.substring(eq + 1));
                }
            }
        }
        return pairs;
    }

    Properties clientProperties(String propertyFlag) {
        Properties props = new Properties();
        props.put("bootstrap.servers", get("--bootstrap-server"));
        props.putAll(pairs(propertyFlag));
        return props;
    }
}

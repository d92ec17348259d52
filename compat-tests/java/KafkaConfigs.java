import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.common.config.ConfigResource;

/** What kafka-configs.sh does for topics and brokers: --describe [--all], --alter --add-config / --delete-config. */
public final class KafkaConfigs {
    public static void main(String[] args) throws Exception {
        Flags flags = new Flags(args, "--describe", "--alter", "--all");
        ConfigResource.Type type = switch (flags.get("--entity-type")) {
            case "topics" -> ConfigResource.Type.TOPIC;
            case "brokers" -> ConfigResource.Type.BROKER;
            default -> throw new IllegalArgumentException("--entity-type topics|brokers");
        };
        ConfigResource resource = new ConfigResource(type, flags.get("--entity-name"));
        try (Admin admin = Admin.create(flags.clientProperties("--command-config"))) {
            if (flags.has("--describe")) {
                Config config = admin.describeConfigs(List.of(resource)).all().get().get(resource);
                String kind = type == ConfigResource.Type.TOPIC ? "topic" : "broker";
                System.out.println((flags.has("--all") ? "All" : "Dynamic") + " configs for " + kind + " "
                        + resource.name() + " are:");
                for (ConfigEntry entry : config.entries()) {
                    boolean dynamic = entry.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG
                            || entry.source() == ConfigEntry.ConfigSource.DYNAMIC_BROKER_CONFIG;
                    if (flags.has("--all") || dynamic || type == ConfigResource.Type.BROKER) {
                        System.out.println("  " + entry.name() + "=" + entry.value() + " sensitive=" + entry.isSensitive()
                                + " source=" + entry.source());
                    }
                }
            } else if (flags.has("--alter")) {
                Collection<AlterConfigOp> ops = new ArrayList<>();
                flags.pairs("--add-config").forEach((k, v) ->
                        ops.add(new AlterConfigOp(new ConfigEntry(k, v), AlterConfigOp.OpType.SET)));
                for (String names : flags.all("--delete-config")) {
                    for (String name : names.split(",")) {
                        ops.add(new AlterConfigOp(new ConfigEntry(name, null), AlterConfigOp.OpType.DELETE));
                    }
                }
                admin.incrementalAlterConfigs(Map.of(resource, ops)).all().get();
                System.out.println("Completed updating config for " + resource.type().name().toLowerCase() + " "
                        + resource.name() + ".");
            } else {
                throw new IllegalArgumentException("--describe or --alter");
            }
        }
    }

    private KafkaConfigs() {
    }
}

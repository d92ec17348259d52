import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Collectors;
import java.util.stream.StreamSupport;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * What kafka-console-consumer.sh does. With --group it subscribes as a group member; without,
 * it reads the topic's partitions by assignment (like --partition), from the beginning with
 * --from-beginning, else from the end. Prints as DefaultMessageFormatter with the print.*
 * properties: CreateTime:ts, Partition:p, Offset:o, headers, key, value, tab-separated.
 */
public final class KafkaConsoleConsumer {
    public static void main(String[] args) throws Exception {
        Flags flags = new Flags(args, "--from-beginning");
        Map<String, String> print = flags.pairs("--property");
        Properties props = flags.clientProperties("--consumer-property");
        props.put("key.deserializer", ByteArrayDeserializer.class.getName());
        props.put("value.deserializer", ByteArrayDeserializer.class.getName());
        props.put("enable.auto.commit", flags.has("--group") ? "true" : "false");
        props.put("auto.offset.reset", flags.has("--from-beginning") ? "earliest" : "latest");
        props.put("isolation.level", flags.get("--isolation-level", "read_uncommitted"));
        if (flags.has("--group")) {
            props.put("group.id", flags.get("--group"));
        }
        String topic = flags.get("--topic");
        int max = Integer.parseInt(flags.get("--max-messages", "2147483647"));
        long timeoutMs = Long.parseLong(flags.get("--timeout-ms", "10000"));
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            if (flags.has("--group")) {
                consumer.subscribe(List.of(topic));
            } else {
                List<TopicPartition> partitions = flags.has("--partition")
                        ? List.of(new TopicPartition(topic, Integer.parseInt(flags.get("--partition"))))
                        : consumer.partitionsFor(topic).stream().map(p -> new TopicPartition(topic, p.partition())).toList();
                consumer.assign(partitions);
                String offset = flags.get("--offset", flags.has("--from-beginning") ? "earliest" : "latest");
                switch (offset) {
                    case "earliest" -> consumer.seekToBeginning(partitions);
                    case "latest" -> consumer.seekToEnd(partitions);
                    default -> partitions.forEach(p -> consumer.seek(p, Long.parseLong(offset)));
                }
            }
            int printed = 0;
            long idleSince = System.currentTimeMillis();
            while (printed < max && System.currentTimeMillis() - idleSince < timeoutMs) {
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    System.out.println(format(record, print));
                    idleSince = System.currentTimeMillis();
                    if (++printed >= max) {
                        break;
                    }
                }
            }
            System.err.println("Processed a total of " + printed + " messages");
        }
    }

    static String format(ConsumerRecord<byte[], byte[]> record, Map<String, String> print) {
        List<String> fields = new ArrayList<>();
        if (flag(print, "print.timestamp")) {
            fields.add(record.timestampType() + ":" + record.timestamp());
        }
        if (flag(print, "print.partition")) {
            fields.add("Partition:" + record.partition());
        }
        if (flag(print, "print.offset")) {
            fields.add("Offset:" + record.offset());
        }
        if (flag(print, "print.headers")) {
            String headers = StreamSupport.stream(record.headers().spliterator(), false)
                    .map(h -> h.key() + ":" + text(h.value())).collect(Collectors.joining(","));
            fields.add(headers.isEmpty() ? "NO_HEADERS" : headers);
        }
        if (flag(print, "print.key")) {
            fields.add(text(record.key()));
        }
        fields.add(text(record.value()));
        return String.join("\t", fields);
    }

    static boolean flag(Map<String, String> print, String name) {
        return Boolean.parseBoolean(print.getOrDefault(name, "false"));
    }

    static String text(byte[] bytes) {
        return bytes == null ? "null" : new String(bytes, StandardCharsets.UTF_8);
    }

    private KafkaConsoleConsumer() {
    }
}

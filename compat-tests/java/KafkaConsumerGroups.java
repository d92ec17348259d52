import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;

/**
 * What kafka-consumer-groups.sh does: --list, --describe (offsets, log end, lag), --reset-offsets
 * (--to-earliest, --to-latest, --to-offset, --to-datetime) --execute, --delete, --delete-offsets.
 */
public final class KafkaConsumerGroups {
    public static void main(String[] args) throws Exception {
        Flags flags = new Flags(args, "--list", "--describe", "--reset-offsets", "--execute", "--delete",
                "--delete-offsets", "--to-earliest", "--to-latest");
        try (Admin admin = Admin.create(flags.clientProperties("--command-config"))) {
            if (flags.has("--list")) {
                for (ConsumerGroupListing g : admin.listConsumerGroups().all().get()) {
                    System.out.println(g.groupId());
                }
            } else if (flags.has("--describe")) {
                String group = flags.get("--group");
                Map<TopicPartition, OffsetAndMetadata> committed =
                        admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
                Map<TopicPartition, OffsetSpec> ends = new HashMap<>();
                committed.keySet().forEach(tp -> ends.put(tp, OffsetSpec.latest()));
                Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> logEnd = admin.listOffsets(ends).all().get();
                System.out.println("GROUP\tTOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG");
                new TreeMap<String, String>() {{
                    committed.forEach((tp, om) -> {
                        long end = logEnd.get(tp).offset();
                        put(tp.toString(), String.join("\t", group, tp.topic(), Integer.toString(tp.partition()),
                                Long.toString(om.offset()), Long.toString(end), Long.toString(end - om.offset())));
                    });
                }}.values().forEach(System.out::println);
            } else if (flags.has("--reset-offsets")) {
                String group = flags.get("--group");
                String topic = flags.get("--topic");
                int partitions = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size();
                OffsetSpec spec = flags.has("--to-earliest") ? OffsetSpec.earliest()
                        : flags.has("--to-latest") ? OffsetSpec.latest()
                        : flags.has("--to-datetime") ? OffsetSpec.forTimestamp(Instant.parse(flags.get("--to-datetime")).toEpochMilli())
                        : null;
                Map<TopicPartition, OffsetAndMetadata> target = new HashMap<>();
                Map<TopicPartition, OffsetSpec> query = new HashMap<>();
                for (int p = 0; p < partitions; p++) {
                    TopicPartition tp = new TopicPartition(topic, p);
                    if (spec == null) {
                        target.put(tp, new OffsetAndMetadata(Long.parseLong(flags.get("--to-offset"))));
                    } else {
                        query.put(tp, spec);
                    }
                }
                if (!query.isEmpty()) {
                    admin.listOffsets(query).all().get().forEach((tp, info) -> target.put(tp, new OffsetAndMetadata(info.offset())));
                }
                if (flags.has("--execute")) {
                    admin.alterConsumerGroupOffsets(group, target).all().get();
                }
                System.out.println("GROUP\tTOPIC\tPARTITION\tNEW-OFFSET");
                new TreeMap<Integer, Long>() {{
                    target.forEach((tp, om) -> put(tp.partition(), om.offset()));
                }}.forEach((p, o) -> System.out.println(group + "\t" + topic + "\t" + p + "\t" + o));
            } else if (flags.has("--delete-offsets")) {
                String group = flags.get("--group");
                String topic = flags.get("--topic");
                Set<TopicPartition> partitions = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get()
                        .keySet().stream().filter(tp -> tp.topic().equals(topic)).collect(Collectors.toSet());
                admin.deleteConsumerGroupOffsets(group, partitions).all().get();
                System.out.println("Deleted offsets of " + topic + " for group " + group + ".");
            } else if (flags.has("--delete")) {
                admin.deleteConsumerGroups(List.of(flags.get("--group"))).all().get();
                System.out.println("Deletion of requested consumer groups ('" + flags.get("--group") + "') was successful.");
            } else {
                throw new IllegalArgumentException("one of --list, --describe, --reset-offsets, --delete, --delete-offsets");
            }
        }
    }

    private KafkaConsumerGroups() {
    }
}

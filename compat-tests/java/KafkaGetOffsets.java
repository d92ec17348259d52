import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.common.TopicPartition;

/** What kafka-get-offsets.sh does: `--topic T --time -1|-2|-3|<ms>`, prints `topic:partition:offset`. */
public final class KafkaGetOffsets {
    public static void main(String[] args) throws Exception {
        Flags flags = new Flags(args);
        String topic = flags.get("--topic");
        long time = Long.parseLong(flags.get("--time", "-1"));
        OffsetSpec spec = time == -1 ? OffsetSpec.latest() : time == -2 ? OffsetSpec.earliest()
                : time == -3 ? OffsetSpec.maxTimestamp() : OffsetSpec.forTimestamp(time);
        try (Admin admin = Admin.create(flags.clientProperties("--command-config"))) {
            int partitions = admin.describeTopics(java.util.List.of(topic)).allTopicNames().get().get(topic).partitions().size();
            Map<TopicPartition, OffsetSpec> request = new HashMap<>();
            for (int p = 0; p < partitions; p++) {
                request.put(new TopicPartition(topic, p), spec);
            }
            Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> found = admin.listOffsets(request).all().get();
            new TreeMap<Integer, Long>() {{
                found.forEach((tp, info) -> put(tp.partition(), info.offset()));
            }}.forEach((p, offset) -> System.out.println(topic + ":" + p + ":" + offset));
        }
    }

    private KafkaGetOffsets() {
    }
}

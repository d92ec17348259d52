import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.common.TopicPartition;

/** What kafka-delete-records.sh does: `--offset-json-file F` with {"partitions":[{"topic","partition","offset"}]}. */
public final class KafkaDeleteRecords {
    public static void main(String[] args) throws Exception {
        Flags flags = new Flags(args);
        String json = Files.readString(Path.of(flags.get("--offset-json-file")));
        Pattern entry = Pattern.compile(
                "\\{\\s*\"topic\"\\s*:\\s*\"([^\"]+)\"\\s*,\\s*\"partition\"\\s*:\\s*(\\d+)\\s*,\\s*\"offset\"\\s*:\\s*(-?\\d+)\\s*\\}");
        Map<TopicPartition, RecordsToDelete> request = new HashMap<>();
        Matcher m = entry.matcher(json);
        while (m.find()) {
            request.put(new TopicPartition(m.group(1), Integer.parseInt(m.group(2))),
                    RecordsToDelete.beforeOffset(Long.parseLong(m.group(3))));
        }
        try (Admin admin = Admin.create(flags.clientProperties("--command-config"))) {
            var result = admin.deleteRecords(request).lowWatermarks();
            for (var e : result.entrySet()) {
                System.out.println("partition: " + e.getKey() + "\tlow_watermark: " + e.getValue().get().lowWatermark());
            }
        }
    }

    private KafkaDeleteRecords() {
    }
}

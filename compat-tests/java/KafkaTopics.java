import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.config.ConfigResource;

/** What kafka-topics.sh does: --create, --list, --describe, --alter --partitions, --delete. */
public final class KafkaTopics {
    public static void main(String[] args) throws Exception {
        Flags flags = new Flags(args, "--create", "--list", "--describe", "--alter", "--delete");
        try (Admin admin = Admin.create(flags.clientProperties("--command-config"))) {
            if (flags.has("--create")) {
                String topic = flags.get("--topic");
                Optional<Integer> partitions = Optional.ofNullable(flags.get("--partitions", null)).map(Integer::parseInt);
                Optional<Short> replication = Optional.ofNullable(flags.get("--replication-factor", null)).map(Short::parseShort);
                NewTopic newTopic = new NewTopic(topic, partitions, replication).configs(flags.pairs("--config"));
                admin.createTopics(List.of(newTopic)).all().get();
                System.out.println("Created topic " + topic + ".");
            } else if (flags.has("--list")) {
                for (String name : new TreeSet<>(admin.listTopics().names().get())) {
                    System.out.println(name);
                }
            } else if (flags.has("--describe")) {
                List<String> topics = flags.has("--topic") ? List.of(flags.get("--topic"))
                        : List.copyOf(new TreeSet<>(admin.listTopics().names().get()));
                Map<String, TopicDescription> described = admin.describeTopics(topics).allTopicNames().get();
                for (String name : topics) {
                    TopicDescription d = described.get(name);
                    ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, name);
                    Config config = admin.describeConfigs(List.of(resource)).all().get().get(resource);
                    String configs = config.entries().stream()
                            .filter(e -> e.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG)
                            .map(e -> e.name() + "=" + e.value()).sorted().collect(Collectors.joining(","));
                    System.out.printf("Topic: %s\tTopicId: %s\tPartitionCount: %d\tReplicationFactor: %d\tConfigs: %s%n",
                            name, d.topicId(), d.partitions().size(), d.partitions().get(0).replicas().size(), configs);
                    d.partitions().forEach(p -> System.out.printf("\tTopic: %s\tPartition: %d\tLeader: %d\tReplicas: %s\tIsr: %s%n",
                            name, p.partition(), p.leader().id(), ids(p.replicas()), ids(p.isr())));
                }
            } else if (flags.has("--alter")) {
                String topic = flags.get("--topic");
                admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(Integer.parseInt(flags.get("--partitions"))))).all().get();
                System.out.println("Partitions of " + topic + " increased.");
            } else if (flags.has("--delete")) {
                admin.deleteTopics(List.of(flags.get("--topic"))).all().get();
                System.out.println("Deleted topic " + flags.get("--topic") + ".");
            } else {
                throw new IllegalArgumentException("one of --create, --list, --describe, --alter, --delete");
            }
        }
    }

    static String ids(List<org.apache.kafka.common.Node> nodes) {
        return nodes.stream().map(n -> Integer.toString(n.id())).collect(Collectors.joining(","));
    }

    private KafkaTopics() {
        Collections.emptyList();
    }
}

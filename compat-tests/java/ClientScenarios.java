import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * KafkaProducer and KafkaConsumer scenarios, each failing (exit 1) on any mismatch:
 *   produce-consume BOOTSTRAP TOPIC CODEC ACKS IDEMPOTENCE
 *   consumer-ops BOOTSTRAP TOPIC            (seek, pause/resume, read_committed)
 *   group BOOTSTRAP TOPIC PROTOCOL          (classic | consumer; subscribe, commitSync, commitAsync)
 *   transactions BOOTSTRAP TOPIC
 * Each also checks the clients' own metrics: never throttled, no reconnect storm.
 */
public final class ClientScenarios {
    /** Record timestamps start here: -Dtidelog.base.ts, else an hour ago (recent, so time retention keeps them). */
    static final long BASE_TS = Long.getLong("tidelog.base.ts", System.currentTimeMillis() / 1000 * 1000 - 3_600_000L);

    public static void main(String[] args) throws Exception {
        String bootstrap = args[1];
        String topic = args[2];
        switch (args[0]) {
            case "produce-consume" -> produceConsume(bootstrap, topic, args[3], args[4], args[5]);
            case "consumer-ops" -> consumerOps(bootstrap, topic);
            case "group" -> group(bootstrap, topic, args[3]);
            case "transactions" -> transactions(bootstrap, topic);
            default -> throw new IllegalArgumentException(args[0]);
        }
    }

    static Properties producerProps(String bootstrap) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("key.serializer", ByteArraySerializer.class.getName());
        p.put("value.serializer", ByteArraySerializer.class.getName());
        p.put("linger.ms", "5");
        return p;
    }

    static Properties consumerProps(String bootstrap) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        p.put("enable.auto.commit", "false");
        return p;
    }

    static byte[] bytes(String s) {
        return s == null ? null : s.getBytes(StandardCharsets.UTF_8);
    }

    static void check(boolean condition, String what) {
        if (!condition) {
            throw new AssertionError(what);
        }
    }

    static List<ProducerRecord<byte[], byte[]>> records(String topic, int count) {
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            ProducerRecord<byte[], byte[]> r = new ProducerRecord<>(topic, 0, BASE_TS + i, bytes("k" + i),
                    i % 9 == 8 ? null : bytes("v" + i));
            r.headers().add("i", bytes(Integer.toString(i)));
            records.add(r);
        }
        return records;
    }

    static List<ConsumerRecord<byte[], byte[]>> readAll(KafkaConsumer<byte[], byte[]> consumer, int count) {
        List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
        long deadline = System.currentTimeMillis() + 30_000;
        while (got.size() < count && System.currentTimeMillis() < deadline) {
            consumer.poll(Duration.ofMillis(200)).forEach(got::add);
        }
        check(got.size() == count, "consumed " + got.size() + " of " + count);
        return got;
    }

    /** Polls until at least `count` records arrived (one poll may bring more). */
    static List<ConsumerRecord<byte[], byte[]>> readAtLeast(KafkaConsumer<byte[], byte[]> consumer, int count) {
        List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
        long deadline = System.currentTimeMillis() + 60_000;
        while (got.size() < count && System.currentTimeMillis() < deadline) {
            consumer.poll(Duration.ofMillis(200)).forEach(got::add);
        }
        check(got.size() >= count, "consumed " + got.size() + " of at least " + count);
        return got;
    }

    /** The client was never throttled and did not reconnect over and over. */
    static void checkMetrics(String who, Map<MetricName, ? extends Metric> metrics) {
        for (var e : metrics.entrySet()) {
            String name = e.getKey().name();
            Object value = e.getValue().metricValue();
            if (name.contains("throttle-time") && value instanceof Double d && !d.isNaN()) {
                check(d == 0.0, who + " " + name + " = " + d + ": throttled");
            }
            if (name.equals("connection-creation-total") && e.getKey().group().endsWith("-metrics")
                    && e.getKey().tags().size() == 1) {
                check((Double) value <= 4.0, who + " opened " + value + " connections: a reconnect storm");
            }
        }
    }

    static void produceConsume(String bootstrap, String topic, String codec, String acks, String idempotence)
            throws Exception {
        Properties p = producerProps(bootstrap);
        p.put("compression.type", codec);
        p.put("acks", acks);
        p.put("enable.idempotence", idempotence);
        List<ProducerRecord<byte[], byte[]>> sent = records(topic, 45);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            List<java.util.concurrent.Future<RecordMetadata>> futures = new ArrayList<>();
            sent.forEach(r -> futures.add(producer.send(r)));
            for (int i = 0; i < futures.size(); i++) {
                RecordMetadata m = futures.get(i).get();
                if (!acks.equals("0")) {
                    check(m.offset() == i, "record " + i + " got offset " + m.offset());
                }
            }
            checkMetrics("producer", producer.metrics());
        }
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(consumerProps(bootstrap))) {
            TopicPartition tp = new TopicPartition(topic, 0);
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            List<ConsumerRecord<byte[], byte[]>> got = readAll(consumer, sent.size());
            for (int i = 0; i < sent.size(); i++) {
                ConsumerRecord<byte[], byte[]> r = got.get(i);
                check(r.offset() == i, "offset " + r.offset() + " at " + i);
                check(java.util.Arrays.equals(r.key(), sent.get(i).key()), "key at " + i);
                check(java.util.Arrays.equals(r.value(), sent.get(i).value()), "value at " + i);
                check(r.timestamp() == BASE_TS + i, "timestamp at " + i);
                check(java.util.Arrays.equals(r.headers().lastHeader("i").value(), bytes(Integer.toString(i))), "header at " + i);
            }
            checkMetrics("consumer", consumer.metrics());
        }
        System.out.println("OK produce-consume " + codec + " acks=" + acks + " idempotence=" + idempotence);
    }

    static void consumerOps(String bootstrap, String topic) throws Exception {
        Properties p = producerProps(bootstrap);
        p.put("enable.idempotence", "false");
        p.put("acks", "all");
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            for (var r : records(topic, 30)) {
                producer.send(r).get();
            }
        }
        Properties c = consumerProps(bootstrap);
        c.put("isolation.level", "read_committed");
        c.put("max.poll.records", "5");
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(c)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            consumer.assign(List.of(tp));
            consumer.seek(tp, 20);
            List<ConsumerRecord<byte[], byte[]>> got = readAll(consumer, 5);
            check(got.get(0).offset() == 20, "seek to 20 read " + got.get(0).offset());
            consumer.pause(List.of(tp));
            check(consumer.poll(Duration.ofMillis(500)).isEmpty(), "a paused partition returned records");
            consumer.resume(List.of(tp));
            List<ConsumerRecord<byte[], byte[]>> more = readAll(consumer, 5);
            check(more.get(0).offset() == 25, "after resume read " + more.get(0).offset());
            check(consumer.position(tp) == 30, "position " + consumer.position(tp));
            check(consumer.endOffsets(List.of(tp)).get(tp) == 30, "end offset");
            check(consumer.beginningOffsets(List.of(tp)).get(tp) == 0, "beginning offset");
            var byTime = consumer.offsetsForTimes(Map.of(tp, BASE_TS + 12)).get(tp);
            check(byTime.offset() == 12 && byTime.timestamp() == BASE_TS + 12, "offsetsForTimes " + byTime);
            checkMetrics("consumer", consumer.metrics());
        }
        System.out.println("OK consumer-ops");
    }

    static void group(String bootstrap, String topic, String protocol) throws Exception {
        Properties p = producerProps(bootstrap);
        p.put("enable.idempotence", "false");
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            for (var r : records(topic, 10)) {
                producer.send(r).get();
            }
        }
        Properties c = consumerProps(bootstrap);
        c.put("group.id", "java-" + protocol + "-" + topic);
        c.put("group.protocol", protocol);
        c.put("auto.offset.reset", "earliest");
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(c)) {
            consumer.subscribe(List.of(topic));
            readAtLeast(consumer, 5);
            var committed = Map.of(new TopicPartition(topic, 0), new org.apache.kafka.clients.consumer.OffsetAndMetadata(4));
            consumer.commitSync(committed);
            // commitAsync of offset 5; close() waits for it to complete.
            var asyncResult = new java.util.concurrent.CompletableFuture<Exception>();
            consumer.commitAsync(Map.of(new TopicPartition(topic, 0), new org.apache.kafka.clients.consumer.OffsetAndMetadata(5)),
                    (offsets, error) -> asyncResult.complete(error));
            while (!asyncResult.isDone()) {
                consumer.poll(Duration.ofMillis(100));
            }
            check(asyncResult.get() == null, "commitAsync failed: " + asyncResult.get());
        }
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(c)) {
            consumer.subscribe(List.of(topic));
            List<ConsumerRecord<byte[], byte[]>> resumed = readAtLeast(consumer, 1);
            check(resumed.get(0).offset() == 5, "resumed at " + resumed.get(0).offset() + ", committed 5");
        }
        System.out.println("OK group " + protocol);
    }

    static void transactions(String bootstrap, String topic) throws Exception {
        Properties p = producerProps(bootstrap);
        p.put("transactional.id", "tx-" + topic);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            producer.initTransactions();
            producer.beginTransaction();
            producer.send(new ProducerRecord<>(topic, bytes("t"))).get();
            producer.commitTransaction();
        }
        System.out.println("OK transactions");
    }

    private ClientScenarios() {
    }
}

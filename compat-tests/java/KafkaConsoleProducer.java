import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * What kafka-console-producer.sh does: one record per stdin line; `--property parse.key=true`
 * (key.separator, default tab) and `--property parse.headers=true` (`h1:v1,h2:v2` then
 * headers.delimiter, default tab) as the real tool.
 */
public final class KafkaConsoleProducer {
    public static void main(String[] args) throws Exception {
        Flags flags = new Flags(args);
        Map<String, String> reader = flags.pairs("--property");
        boolean parseKey = Boolean.parseBoolean(reader.getOrDefault("parse.key", "false"));
        boolean parseHeaders = Boolean.parseBoolean(reader.getOrDefault("parse.headers", "false"));
        String keySeparator = reader.getOrDefault("key.separator", "\t");
        String headersDelimiter = reader.getOrDefault("headers.delimiter", "\t");
        Properties props = flags.clientProperties("--producer-property");
        props.putIfAbsent("acks", flags.get("--request-required-acks", "-1"));
        props.putIfAbsent("compression.type", flags.get("--compression-codec", "none"));
        props.put("key.serializer", ByteArraySerializer.class.getName());
        props.put("value.serializer", ByteArraySerializer.class.getName());
        String topic = flags.get("--topic");
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props);
             BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) {
                String rest = line;
                String headers = null;
                if (parseHeaders) {
                    int at = rest.indexOf(headersDelimiter);
                    headers = rest.substring(0, at);
                    rest = rest.substring(at + headersDelimiter.length());
                }
                byte[] key = null;
                if (parseKey) {
                    int at = rest.indexOf(keySeparator);
                    key = rest.substring(0, at).getBytes(StandardCharsets.UTF_8);
                    rest = rest.substring(at + keySeparator.length());
                }
                ProducerRecord<byte[], byte[]> record = new ProducerRecord<>(topic, key, rest.getBytes(StandardCharsets.UTF_8));
                if (headers != null) {
                    for (String header : headers.split(",")) {
                        int colon = header.indexOf(':');
                        record.headers().add(header.substring(0, colon), header.substring(colon + 1).getBytes(StandardCharsets.UTF_8));
                    }
                }
                producer.send(record).get();
            }
        }
    }

    private KafkaConsoleProducer() {
    }
}

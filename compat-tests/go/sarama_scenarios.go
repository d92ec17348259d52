// Sarama (Debian's 1.22.1) scenarios, driven by compat-tests/test_go_sarama.py:
// `sarama_scenarios <scenario> <bootstrap> <topic>`; prints one JSON object with what it saw.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/Shopify/sarama"
)

func config() *sarama.Config {
	c := sarama.NewConfig()
	// The newest protocol this sarama knows; Kafka 4 no longer serves the 0.8 defaults.
	c.Version = sarama.V2_1_0_0
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	// CODEC picks the compression of produced batches (default gzip).
	switch os.Getenv("CODEC") {
	case "none":
		c.Producer.Compression = sarama.CompressionNone
	case "snappy":
		c.Producer.Compression = sarama.CompressionSnappy
	case "lz4":
		c.Producer.Compression = sarama.CompressionLZ4
	case "zstd":
		c.Producer.Compression = sarama.CompressionZSTD
	default:
		c.Producer.Compression = sarama.CompressionGZIP
	}
	c.Consumer.Return.Errors = true
	return c
}

func must(err error, what string) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
		os.Exit(1)
	}
}

func admin(bootstrap, topic string) map[string]interface{} {
	a, err := sarama.NewClusterAdmin([]string{bootstrap}, config())
	must(err, "admin")
	defer a.Close()
	client, err := sarama.NewClient([]string{bootstrap}, config())
	must(err, "client")
	defer client.Close()
	partitions := func() int {
		must(client.RefreshMetadata(topic), "metadata")
		ids, err := client.Partitions(topic)
		must(err, "partitions")
		return len(ids)
	}
	must(a.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.ms": strPtr("60000")}}, false), "create")
	created := partitions()
	err = a.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
	exists := err != nil
	must(a.CreatePartitions(topic, 4, nil, false), "create partitions")
	grown := partitions()
	must(a.DeleteTopic(topic), "delete")
	must(client.RefreshMetadata(), "metadata after delete")
	topics, err := client.Topics()
	must(err, "topics")
	deleted := true
	for _, name := range topics {
		if name == topic {
			deleted = false
		}
	}
	return map[string]interface{}{
		"partitions": created, "exists_error": exists, "grown": grown, "deleted": deleted,
	}
}

// ListTopics and DescribeConfig of this sarama send DescribeConfigs v0, which Kafka 4 removed.
func describeConfig(bootstrap, topic string) map[string]interface{} {
	a, err := sarama.NewClusterAdmin([]string{bootstrap}, config())
	must(err, "admin")
	defer a.Close()
	must(a.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false), "create")
	entries, err := a.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
	must(err, "describe config")
	return map[string]interface{}{"entries": len(entries)}
}

func strPtr(s string) *string { return &s }

func produceConsume(bootstrap, topic string) map[string]interface{} {
	producer, err := sarama.NewSyncProducer([]string{bootstrap}, config())
	must(err, "producer")
	offsets := []int64{}
	for i := 0; i < 20; i++ {
		_, offset, err := producer.SendMessage(&sarama.ProducerMessage{
			Topic: topic, Partition: 0,
			Key:     sarama.StringEncoder(fmt.Sprintf("k%d", i)),
			Value:   sarama.StringEncoder(fmt.Sprintf("v%d", i)),
			Headers: []sarama.RecordHeader{{Key: []byte("n"), Value: []byte(fmt.Sprint(i))}},
		})
		must(err, "send")
		offsets = append(offsets, offset)
	}
	must(producer.Close(), "producer close")

	consumer, err := sarama.NewConsumer([]string{bootstrap}, config())
	must(err, "consumer")
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
	must(err, "consume partition")
	defer pc.Close()
	records := [][]string{}
	deadline := time.After(30 * time.Second)
	for len(records) < 20 {
		select {
		case m := <-pc.Messages():
			header := ""
			if len(m.Headers) == 1 {
				header = string(m.Headers[0].Key) + "=" + string(m.Headers[0].Value)
			}
			records = append(records, []string{fmt.Sprint(m.Offset), string(m.Key), string(m.Value), header})
		case err := <-pc.Errors():
			must(err, "consume")
		case <-deadline:
			must(fmt.Errorf("only %d records", len(records)), "consume")
		}
	}
	client, err := sarama.NewClient([]string{bootstrap}, config())
	must(err, "client")
	defer client.Close()
	newest, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
	must(err, "offset newest")
	oldest, err := client.GetOffset(topic, 0, sarama.OffsetOldest)
	must(err, "offset oldest")
	return map[string]interface{}{"offsets": offsets, "records": records, "newest": newest, "oldest": oldest}
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: sarama_scenarios admin|produce-consume BOOTSTRAP TOPIC")
		os.Exit(2)
	}
	var result map[string]interface{}
	switch os.Args[1] {
	case "admin":
		result = admin(os.Args[2], os.Args[3])
	case "describe-config":
		result = describeConfig(os.Args[2], os.Args[3])
	case "produce-consume":
		result = produceConsume(os.Args[2], os.Args[3])
	default:
		fmt.Fprintln(os.Stderr, "unknown scenario", os.Args[1])
		os.Exit(2)
	}
	out, err := json.Marshal(result)
	must(err, "json")
	fmt.Println(string(out))
}

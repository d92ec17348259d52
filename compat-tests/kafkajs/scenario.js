// kafkajs scenarios, driven by compat-tests/test_kafkajs.py: `node scenario.js <name> <bootstrap> <topic>`.
// Each prints one JSON line with what it observed; the Python side checks it.
const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

const [name, bootstrap, topic] = process.argv.slice(2);
// Record timestamps start here (milliseconds), given by the Python side.
const BASE_TS = Number(process.env.BASE_TS);
const kafka = new Kafka({ clientId: 'tidelog-compat', brokers: [bootstrap], logLevel: logLevel.ERROR });

const scenarios = {
  async admin() {
    const admin = kafka.admin();
    await admin.connect();
    const created = await admin.createTopics({
      topics: [{ topic, numPartitions: 2, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
      waitForLeaders: true,
    });
    const again = await admin.createTopics({ topics: [{ topic }] });
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
    await admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] });
    const grown = await admin.fetchTopicMetadata({ topics: [topic] });
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: 2, name: topic, configEntries: [{ name: 'retention.ms', value: '7200000' }] }],
    });
    const configs = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: 2, name: topic, configNames: ['retention.ms', 'cleanup.policy'] }],
    });
    const cluster = await admin.describeCluster();
    const listed = await admin.listTopics();
    await admin.deleteTopics({ topics: [topic] });
    const afterDelete = await admin.listTopics();
    await admin.disconnect();
    return {
      created, again,
      partitions: metadata.topics[0].partitions.map((p) => [p.partitionId, p.leader]).sort(),
      grown: grown.topics[0].partitions.length,
      configs: Object.fromEntries(configs.resources[0].configEntries.map((c) => [c.configName, c.configValue])),
      brokers: cluster.brokers.map((b) => [b.nodeId, b.host, b.port]),
      controller: cluster.controller,
      listed: listed.includes(topic),
      deleted: !afterDelete.includes(topic),
    };
  },

  async produce() {
    const producer = kafka.producer({ allowAutoTopicCreation: true });
    await producer.connect();
    const results = [];
    for (const [acks, compression] of [[-1, CompressionTypes.None], [1, CompressionTypes.GZIP], [0, CompressionTypes.None]]) {
      const messages = [];
      for (let i = 0; i < 10; i++) {
        const n = results.length * 10 + i;
        messages.push({
          key: `k${n}`,
          value: n % 5 === 4 ? null : `v${n}`,
          headers: { n: `${n}` },
          timestamp: `${BASE_TS + n}`,
        });
      }
      const sent = await producer.send({ topic, acks, compression, messages });
      results.push(sent.map((r) => ({ partition: r.partition, error: r.errorCode, base: r.baseOffset ?? null })));
    }
    await producer.disconnect();
    return { results };
  },

  async offsets() {
    const admin = kafka.admin();
    await admin.connect();
    const latest = await admin.fetchTopicOffsets(topic);
    const byTime = await admin.fetchTopicOffsetsByTimestamp(topic, BASE_TS + 5);
    await admin.disconnect();
    return {
      latest: latest.map((p) => [p.partition, p.low, p.high]),
      byTime: byTime.map((p) => [p.partition, p.offset]),
    };
  },

  async idempotent() {
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const sent = await producer.send({ topic, messages: [{ value: 'a' }, { value: 'b' }] });
    await producer.disconnect();
    return { base: sent[0].baseOffset };
  },

  async deleteRecords() {
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: Array.from({ length: 10 }, (_, i) => ({ value: `m${i}` })) });
    await producer.disconnect();
    const admin = kafka.admin();
    await admin.connect();
    await admin.fetchTopicMetadata({ topics: [topic] }); // deleteTopicRecords needs it loaded
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '4' }] });
    const offsets = await admin.fetchTopicOffsets(topic);
    await admin.disconnect();
    return { low: offsets[0].low };
  },

  async groupAdmin() {
    const admin = kafka.admin();
    await admin.connect();
    const groupId = `g-${topic}`;
    await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '3' }] });
    const fetched = await admin.fetchOffsets({ groupId, topics: [topic] });
    const listed = await admin.listGroups();
    const described = await admin.describeGroups([groupId]);
    await admin.deleteGroups([groupId]);
    const after = await admin.listGroups();
    await admin.disconnect();
    return {
      offset: fetched[0].partitions[0].offset,
      listed: listed.groups.some((g) => g.groupId === groupId),
      described: described.groups[0].groupId,
      deleted: !after.groups.some((g) => g.groupId === groupId),
    };
  },

  async consume() {
    // kafkajs consumers always join a group (no assign): needs the consumer-groups issue.
    const consumer = kafka.consumer({ groupId: `g-${topic}`, sessionTimeout: 10000 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const seen = [];
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${seen.length} messages`)), 30000);
      consumer.run({
        eachMessage: async ({ message }) => {
          seen.push([message.offset, message.value && message.value.toString()]);
          if (seen.length >= 5) { clearTimeout(timer); resolve(); }
        },
      }).catch(reject);
    });
    await consumer.disconnect();
    return { seen };
  },
};

scenarios[name]()
  .then((result) => { console.log(JSON.stringify(result)); process.exit(0); })
  .catch((error) => { console.error(error && error.stack || error); process.exit(1); });

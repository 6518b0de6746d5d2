// A kafkajs group consumer for compat-tests/cluster-clients (driven by clients.py group-kill).
// Env: BOOTSTRAP (comma list), TOPIC, GROUP. Subscribes from the beginning with auto-commit every
// 500 ms and prints one line per record, `M <partition> <offset> <value>`, and one per consumer
// event, `E <event> <detail>`, on stdout; kafkajs's own log goes to stderr. SIGTERM disconnects
// (leaves the group) and exits 0.
'use strict';
const path = require('path');
const { Kafka, logLevel } = require(path.join(__dirname, '..', 'kafkajs', 'node_modules', 'kafkajs'));

const brokers = process.env.BOOTSTRAP.split(',');
const topic = process.env.TOPIC;
const groupId = process.env.GROUP;

const toStderr = () => ({ level, log }) => {
  const { message, ...extra } = log;
  process.stderr.write(`[kafkajs ${level}] ${message} ${JSON.stringify(extra)}\n`);
};
const kafka = new Kafka({
  clientId: 'cluster-clients',
  brokers,
  logLevel: logLevel.WARN,
  logCreator: toStderr,
  connectionTimeout: 3000,
  requestTimeout: 10000,
  retry: { initialRetryTime: 200, maxRetryTime: 1000, retries: 5 },
});
const consumer = kafka.consumer({
  groupId,
  sessionTimeout: 10000,
  heartbeatInterval: 1000,
  rebalanceTimeout: 20000,
  retry: { initialRetryTime: 200, maxRetryTime: 1000, retries: 5 },
});
const out = (line) => process.stdout.write(line + '\n');

const ev = consumer.events;
consumer.on(ev.GROUP_JOIN, (e) => out(`E GROUP_JOIN leader=${e.payload.isLeader} member=${e.payload.memberId} assignment=${JSON.stringify(e.payload.memberAssignment)}`));
consumer.on(ev.REBALANCING, () => out('E REBALANCING'));
consumer.on(ev.CRASH, (e) => out(`E CRASH ${e.payload.error && e.payload.error.name}: ${e.payload.error && e.payload.error.message} restart=${e.payload.restart}`));
consumer.on(ev.CONNECT, () => out('E CONNECT'));
consumer.on(ev.STOP, () => out('E STOP'));
consumer.on(ev.REQUEST_TIMEOUT, (e) => out(`E REQUEST_TIMEOUT ${e.payload.broker} api=${e.payload.apiName}`));

let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  try {
    await consumer.disconnect();
  } catch (e) {
    process.stderr.write(`disconnect: ${e}\n`);
    code = code || 1;
  }
  process.exit(code);
}
process.on('SIGTERM', () => stop(0));

(async () => {
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    autoCommit: true,
    autoCommitInterval: 500,
    eachMessage: async ({ partition, message }) => {
      out(`M ${partition} ${message.offset} ${message.value.toString()}`);
    },
  });
})().catch((e) => {
  process.stderr.write(`fatal: ${e && e.stack}\n`);
  stop(2);
});

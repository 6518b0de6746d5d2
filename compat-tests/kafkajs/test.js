// kafkajs (pure JavaScript client, its own protocol code) against Fjord: admin createTopics, producer
// send with and without idempotence, consumer group subscribe fromBeginning + run/eachMessage,
// explicit and automatic commits, a new consumer in the same group resumes after the committed offsets,
// admin fetchOffsets / setOffsets / describeGroups / listGroups / deleteGroups; transactions: a
// committed and an aborted transaction over 3 partitions (a read_committed consumer, kafkajs' default,
// sees only the committed records; a read_uncommitted one sees both) and offsets sent in a
// transaction become the group's committed offsets when it commits.
//
// Usage: FJORD_BOOTSTRAP=127.0.0.1:PORT node test.js
// Prints PASS/FAIL lines (read by run.sh); exits non-zero on any failure. Every wait is bounded.
'use strict';
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Kafka, logLevel, AssignerProtocol } = require('kafkajs');

const BOOTSTRAP = process.env.FJORD_BOOTSTRAP;
if (!BOOTSTRAP) { console.error('FJORD_BOOTSTRAP not set'); process.exit(2); }

const kafka = new Kafka({
  clientId: 'fjord-compat-kafkajs',
  brokers: [BOOTSTRAP],
  logLevel: logLevel.WARN,
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: 5, initialRetryTime: 100 },
});

let passed = 0;
let failed = 0;
async function step(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`PASS ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack.split('\n').slice(0, 4).join(' | ') : e}`);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(pred, ms, what) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}
const uid = () => crypto.randomBytes(4).toString('hex');

const TOPIC = `kafkajs-groups-${uid()}`;
const PARTS = 3;
const GROUP = `kafkajs-group-${uid()}`;
const AUTO_GROUP = `kafkajs-auto-${uid()}`;
const SESSION_TIMEOUT = 10000;

function messages(from, to) {
  const out = [];
  for (let i = from; i < to; i++) out.push({ key: `k${i % 97}`, value: `v${i}` });
  return out;
}

// A group consumer that collects everything eachMessage sees; resolves once it has joined.
async function startConsumer(groupId, opts = {}) {
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: SESSION_TIMEOUT,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 200,
    retry: { retries: 5 },
  });
  const got = [];
  let joined = null;
  consumer.on(consumer.events.GROUP_JOIN, (e) => { joined = e.payload; });
  await consumer.connect();
  await consumer.subscribe({ topics: [TOPIC], fromBeginning: true });
  await consumer.run({
    autoCommit: opts.autoCommit !== false,
    eachMessage: async ({ partition, message }) => {
      got.push({ partition, offset: Number(message.offset), key: message.key.toString(), value: message.value.toString() });
    },
  });
  await waitFor(() => joined !== null, 20000, `consumer in ${groupId} to join`);
  return { consumer, got, joined: () => joined };
}

function expectValues(got, from, to) {
  const vals = got.map((m) => m.value).sort();
  const want = messages(from, to).map((m) => m.value).sort();
  assert.equal(vals.length, want.length, `got ${vals.length} records, expected ${want.length}`);
  assert.deepEqual(vals, want);
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  let highs = null;
  let committedAt = null;
  try {
    await step('admin createTopics (3 partitions); a second create of the same topic returns false', async () => {
      assert.equal(await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTS }], waitForLeaders: true }), true);
      assert.equal(await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTS }], waitForLeaders: true }), false);
      const md = await admin.fetchTopicMetadata({ topics: [TOPIC] });
      assert.equal(md.topics[0].partitions.length, PARTS);
    });

    await step('producer send, acks=-1, not idempotent: 300 keyed records acknowledged', async () => {
      const p = kafka.producer();
      await p.connect();
      try {
        const res = await p.send({ topic: TOPIC, acks: -1, messages: messages(0, 300) });
        assert.ok(res.length > 0);
        for (const r of res) assert.equal(r.errorCode, 0);
      } finally { await p.disconnect(); }
    });

    await step('producer send, idempotent: true: 300 keyed records acknowledged', async () => {
      const p = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      await p.connect();
      try {
        for (let i = 300; i < 600; i += 100) {
          const res = await p.send({ topic: TOPIC, acks: -1, messages: messages(i, i + 100) });
          for (const r of res) assert.equal(r.errorCode, 0);
        }
      } finally { await p.disconnect(); }
      highs = Object.fromEntries((await admin.fetchTopicOffsets(TOPIC)).map((o) => [o.partition, Number(o.high)]));
      assert.equal(Object.values(highs).reduce((a, b) => a + b, 0), 600);
    });

    await step('consumer group subscribe fromBeginning + run eachMessage: all 600 records, each once, offsets 0..end-1', async () => {
      const { consumer, got, joined } = await startConsumer(GROUP, { autoCommit: false });
      try {
        await waitFor(() => got.length >= 600, 30000, '600 records');
        await sleep(500);
        expectValues(got, 0, 600);
        for (let p = 0; p < PARTS; p++) {
          const offs = got.filter((m) => m.partition === p).map((m) => m.offset);
          assert.deepEqual(offs, [...Array(highs[p]).keys()], `partition ${p} offsets`);
        }
        assert.deepEqual(joined().memberAssignment[TOPIC].slice().sort(), [...Array(PARTS).keys()]);
        assert.equal(joined().isLeader, true);

        // describeGroups / listGroups while the member is active.
        const { groups } = await admin.describeGroups([GROUP]);
        assert.equal(groups.length, 1);
        const g = groups[0];
        assert.equal(g.errorCode, 0);
        assert.equal(g.state, 'Stable');
        assert.equal(g.protocolType, 'consumer');
        assert.equal(g.members.length, 1);
        assert.equal(g.members[0].clientId, 'fjord-compat-kafkajs');
        assert.equal(g.members[0].memberId, joined().memberId);
        const assignment = AssignerProtocol.MemberAssignment.decode(g.members[0].memberAssignment);
        assert.deepEqual(assignment.assignment[TOPIC].slice().sort(), [...Array(PARTS).keys()]);
        const listed = (await admin.listGroups()).groups.filter((x) => x.groupId === GROUP);
        assert.deepEqual(listed, [{ groupId: GROUP, protocolType: 'consumer' }]);

        // A group with a member cannot be deleted (NON_EMPTY_GROUP).
        await assert.rejects(admin.deleteGroups([GROUP]), (e) => {
          assert.equal(e.name, 'KafkaJSDeleteGroupsError');
          assert.equal(e.groups[0].error.type, 'NON_EMPTY_GROUP');
          return true;
        });

        // Explicit commit of the position after every consumed record.
        await consumer.commitOffsets([...Array(PARTS).keys()].map((p) => ({ topic: TOPIC, partition: p, offset: String(highs[p]) })));
        committedAt = { ...highs };
      } finally { await consumer.disconnect(); }
    });

    await step('admin fetchOffsets: committed offsets == log end offsets; group Empty after disconnect', async () => {
      const res = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] });
      assert.equal(res.length, 1);
      const got = Object.fromEntries(res[0].partitions.map((p) => [p.partition, Number(p.offset)]));
      assert.deepEqual(got, committedAt);
      const { groups } = await admin.describeGroups([GROUP]);
      assert.equal(groups[0].state, 'Empty');
      assert.equal(groups[0].members.length, 0);
    });

    await step('a new consumer in the same group gets nothing old, then only the 50 records produced after', async () => {
      const { consumer, got } = await startConsumer(GROUP, { autoCommit: false });
      try {
        await sleep(2000);
        assert.deepEqual(got, [], 'committed records were delivered again');
        const p = kafka.producer({ idempotent: true });
        await p.connect();
        await p.send({ topic: TOPIC, acks: -1, messages: messages(600, 650) });
        await p.disconnect();
        await waitFor(() => got.length >= 50, 15000, '50 new records');
        await sleep(500);
        expectValues(got, 600, 650);
        for (const m of got) assert.ok(m.offset >= committedAt[m.partition], `offset ${m.offset} re-delivered`);
      } finally { await consumer.disconnect(); }
      // autoCommit was off and nothing was committed: the committed offsets did not move.
      const res = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] });
      assert.deepEqual(Object.fromEntries(res[0].partitions.map((p) => [p.partition, Number(p.offset)])), committedAt);
    });

    await step('autoCommit (default): a consumer commits what it consumed; the next member resumes after it', async () => {
      const a = await startConsumer(AUTO_GROUP);
      try {
        await waitFor(() => a.got.length >= 650, 30000, '650 records');
      } finally { await a.consumer.disconnect(); }
      expectValues(a.got, 0, 650);
      const ends = Object.fromEntries((await admin.fetchTopicOffsets(TOPIC)).map((o) => [o.partition, Number(o.high)]));
      const res = await admin.fetchOffsets({ groupId: AUTO_GROUP, topics: [TOPIC] });
      assert.deepEqual(Object.fromEntries(res[0].partitions.map((p) => [p.partition, Number(p.offset)])), ends);
      const b = await startConsumer(AUTO_GROUP);
      try {
        await sleep(2000);
        assert.deepEqual(b.got, [], 'auto-committed records were delivered again');
      } finally { await b.consumer.disconnect(); }
    });

    await step('admin setOffsets on the empty group (reset to offset 5): a new consumer starts there', async () => {
      await admin.setOffsets({ groupId: GROUP, topic: TOPIC, partitions: [...Array(PARTS).keys()].map((p) => ({ partition: p, offset: '5' })) });
      const res = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] });
      assert.deepEqual(res[0].partitions.map((p) => Number(p.offset)), [5, 5, 5]);
      const ends = Object.fromEntries((await admin.fetchTopicOffsets(TOPIC)).map((o) => [o.partition, Number(o.high)]));
      const want = Object.values(ends).reduce((a, b) => a + b, 0) - 5 * PARTS;
      const { consumer, got } = await startConsumer(GROUP, { autoCommit: false });
      try {
        await waitFor(() => got.length >= want, 15000, `${want} records from offset 5`);
        await sleep(500);
      } finally { await consumer.disconnect(); }
      assert.equal(got.length, want);
      for (let p = 0; p < PARTS; p++) {
        const offs = got.filter((m) => m.partition === p).map((m) => m.offset);
        assert.deepEqual(offs, [...Array(ends[p] - 5).keys()].map((i) => i + 5), `partition ${p}`);
      }
    });

    await step('transactions: committed records are read, aborted ones only by read_uncommitted; sendOffsets commits with the transaction', async () => {
      const topic = `kafkajs-txn-${uid()}`;
      const group = `kafkajs-txn-group-${uid()}`;
      assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: PARTS }], waitForLeaders: true }), true);
      const p = kafka.producer({ transactionalId: `kafkajs-txn-${uid()}`, idempotent: true, maxInFlightRequests: 1 });
      await p.connect();
      try {
        const write = async (tag, commit) => {
          const t = await p.transaction();
          for (let q = 0; q < PARTS; q++) {
            await t.send({ topic, messages: [0, 1].map((i) => ({ partition: q, value: `${tag}-${q}-${i}` })) });
          }
          if (commit) {
            await t.sendOffsets({ consumerGroupId: group, topics: [{ topic: TOPIC, partitions: [{ partition: 0, offset: '7' }] }] });
            await t.commit();
          } else {
            await t.abort();
          }
        };
        await write('committed', true);
        await write('aborted', false);
        await write('committed2', true);
      } finally { await p.disconnect(); }
      const read = async (readUncommitted, want) => {
        const c = kafka.consumer({ groupId: `kafkajs-txn-reader-${uid()}`, readUncommitted, maxWaitTimeInMs: 200, sessionTimeout: SESSION_TIMEOUT, heartbeatInterval: 500 });
        const got = [];
        await c.connect();
        try {
          await c.subscribe({ topics: [topic], fromBeginning: true });
          await c.run({ eachMessage: async ({ message }) => { got.push(message.value.toString()); } });
          await waitFor(() => got.length >= want, 15000, `${want} records`);
          await sleep(500);
        } finally { await c.disconnect(); }
        return got.sort();
      };
      const committed = (await read(false, 4 * PARTS));
      assert.equal(committed.length, 4 * PARTS, `read_committed got ${committed}`);
      assert.ok(committed.every((v) => v.startsWith('committed')), `read_committed got ${committed}`);
      const all = await read(true, 6 * PARTS);
      assert.equal(all.length, 6 * PARTS);
      assert.equal(all.filter((v) => v.startsWith('aborted')).length, 2 * PARTS);
      const off = await admin.fetchOffsets({ groupId: group, topics: [TOPIC] });
      assert.equal(Number(off[0].partitions.find((x) => x.partition === 0).offset), 7);
    });

    await step('admin deleteGroups on empty groups; listGroups no longer has them; fetchOffsets gives -1', async () => {
      const res = await admin.deleteGroups([GROUP, AUTO_GROUP]);
      assert.deepEqual(res.map((r) => [r.groupId, r.errorCode]).sort(), [[AUTO_GROUP, 0], [GROUP, 0]].sort());
      const ids = (await admin.listGroups()).groups.map((x) => x.groupId);
      assert.ok(!ids.includes(GROUP) && !ids.includes(AUTO_GROUP), `still listed: ${ids}`);
      const off = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] });
      assert.deepEqual(off[0].partitions.map((p) => Number(p.offset)), [-1, -1, -1]);
    });
  } finally {
    await admin.disconnect();
  }
  console.log(`test.js finished: ${passed} steps passed, ${failed} steps failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => {
  console.log(`FAIL kafkajs test script crashed: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});

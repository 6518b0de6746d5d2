// Sarama 1.22 (Debian's golang-github-shopify-sarama-dev, a Go client of 2019 that picks request
// versions from its configured Kafka version instead of asking ApiVersions) against a broker at
// $FJORD_BOOTSTRAP. Each check prints "PASS name" or "FAIL name: why"; run.sh counts them.
//
// Kafka 4.0 dropped the oldest request versions (KIP-896), and sarama 1.22 still sends some of
// them: JoinGroup v1 for consumer groups and OffsetCommit v1 unless a retention time is given.
// Those calls must fail against any Kafka 4.0 broker; the checks below assert that they fail and
// that the same client's other calls on the same connection pool keep working.
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/Shopify/sarama"
)

var failures int

func pass(name string) { fmt.Printf("PASS %s\n", name) }

func fail(name string, format string, args ...interface{}) {
	failures++
	fmt.Printf("FAIL %s: %s\n", name, fmt.Sprintf(format, args...))
}

func check(name string, ok bool, format string, args ...interface{}) {
	if ok {
		pass(name)
	} else {
		fail(name, format, args...)
	}
}

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "fjord-sarama-compat"
	// The newest version sarama 1.22 knows with zstd: Produce v3 (record batches), Fetch v4,
	// Metadata v5, CreateTopics v2, ListOffsets v1, OffsetFetch v1.
	c.Version = sarama.V2_1_0_0
	c.Net.DialTimeout = 5 * time.Second
	c.Net.ReadTimeout = 10 * time.Second
	c.Metadata.Retry.Max = 10
	c.Metadata.Retry.Backoff = 200 * time.Millisecond
	c.Consumer.Return.Errors = true
	return c
}

type sent struct {
	key, value []byte
	headers    map[string]string
	partition  int32
	offset     int64
}

func record(i int) (key, value []byte, headers []sarama.RecordHeader) {
	key = []byte(fmt.Sprintf("key-%d", i%97))
	value = bytes.Repeat([]byte{byte(i), byte(i >> 8), 0, 0xff}, 1+i%300)
	headers = []sarama.RecordHeader{{Key: []byte("i"), Value: []byte(fmt.Sprint(i))}, {Key: []byte("empty"), Value: []byte{}}}
	return
}

func headerMap(hs []*sarama.RecordHeader) map[string]string {
	m := map[string]string{}
	for _, h := range hs {
		m[string(h.Key)] = string(h.Value)
	}
	return m
}

// readAll reads partitions [0, n) of topic from the oldest offset up to each one's high
// watermark, keyed by (partition, offset).
func readAll(client sarama.Client, topic string, n int32) (map[[2]int64]*sarama.ConsumerMessage, error) {
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	got := map[[2]int64]*sarama.ConsumerMessage{}
	for p := int32(0); p < n; p++ {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, fmt.Errorf("partition %d end: %v", p, err)
		}
		if end == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, fmt.Errorf("partition %d: %v", p, err)
		}
		deadline := time.After(30 * time.Second)
		for next := int64(0); next < end; {
			select {
			case m := <-pc.Messages():
				got[[2]int64{int64(p), m.Offset}] = m
				next = m.Offset + 1
			case e := <-pc.Errors():
				pc.Close()
				return nil, fmt.Errorf("partition %d: %v", p, e)
			case <-deadline:
				pc.Close()
				return nil, fmt.Errorf("partition %d: stuck at %d of %d", p, next, end)
			}
		}
		pc.Close()
	}
	return got, nil
}

func main() {
	bootstrap := os.Getenv("FJORD_BOOTSTRAP")
	if bootstrap == "" {
		bootstrap = "127.0.0.1:9092"
	}
	addrs := []string{bootstrap}
	suffix := fmt.Sprint(time.Now().UnixNano())
	topic := "sarama-" + suffix

	client, err := sarama.NewClient(addrs, config())
	if err != nil {
		fail("client connects", "%v", err)
		os.Exit(1)
	}
	defer client.Close()
	pass("client connects")
	brokers := client.Brokers()
	check("metadata lists one broker", len(brokers) == 1, "%d brokers", len(brokers))

	// A fresh admin client per call: sarama 1.22 keeps using a connection the broker has closed
	// after a request version it no longer serves, so one refusal would fail every later call.
	admin := func(f func(sarama.ClusterAdmin) error) error {
		a, err := sarama.NewClusterAdmin(addrs, config())
		if err != nil {
			return err
		}
		defer a.Close()
		return f(a)
	}

	// Admin: create, create again, describe, alter, partitions.
	retention := "86400000"
	err = admin(func(a sarama.ClusterAdmin) error {
		return a.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1,
			ConfigEntries: map[string]*string{"retention.ms": &retention}}, false)
	})
	check("CreateTopics v2 creates a topic", err == nil, "%v", err)
	err = admin(func(a sarama.ClusterAdmin) error {
		return a.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false)
	})
	check("creating it again is TOPIC_ALREADY_EXISTS", err != nil && strings.Contains(err.Error(), sarama.ErrTopicAlreadyExists.Error()), "%v", err)
	err = admin(func(a sarama.ClusterAdmin) error {
		return a.CreateTopic("sarama-bad-"+suffix, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 3}, false)
	})
	check("replication factor 3 on one broker is INVALID_REPLICATION_FACTOR", err != nil && strings.Contains(err.Error(), sarama.ErrInvalidReplicationFactor.Error()), "%v", err)
	var meta []*sarama.TopicMetadata
	err = admin(func(a sarama.ClusterAdmin) (err error) { meta, err = a.DescribeTopics([]string{topic}); return })
	check("DescribeTopics: 3 partitions led by the broker", err == nil && len(meta) == 1 && meta[0].Err == sarama.ErrNoError && len(meta[0].Partitions) == 3 && meta[0].Partitions[0].Leader == brokers[0].ID(),
		"err %v meta %+v", err, meta)
	var described []*sarama.Broker
	var controller int32
	err = admin(func(a sarama.ClusterAdmin) (err error) { described, controller, err = a.DescribeCluster(); return })
	check("DescribeCluster names the broker", err == nil && len(described) == 1 && described[0].ID() == brokers[0].ID(), "err %v brokers %d controller %d", err, len(described), controller)
	// DescribeConfigs v0, which ListTopics uses too, is gone from Kafka 4.0 (it serves v1-v4).
	err = admin(func(a sarama.ClusterAdmin) error {
		_, err := a.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
		return err
	})
	check("DescribeConfigs v0 is refused", err != nil, "it was answered")
	err = admin(func(a sarama.ClusterAdmin) error { _, err := a.ListTopics(); return err })
	check("ListTopics (DescribeConfigs v0) is refused", err != nil, "it was answered")
	maxBytes := "100000"
	err = admin(func(a sarama.ClusterAdmin) error {
		return a.AlterConfig(sarama.TopicResource, topic, map[string]*string{"max.message.bytes": &maxBytes}, false)
	})
	check("AlterConfigs v0 sets max.message.bytes", err == nil, "%v", err)
	bogus := "x"
	err = admin(func(a sarama.ClusterAdmin) error {
		return a.AlterConfig(sarama.TopicResource, topic, map[string]*string{"segment.bytes": &bogus}, false)
	})
	// Kafka 4.0's words; sarama prints the error message when the broker gives one.
	check("AlterConfigs with segment.bytes=x is refused in Kafka's words", err != nil && err.Error() == "Invalid value x for configuration segment.bytes: Not a number of type INT", "%v", err)
	err = admin(func(a sarama.ClusterAdmin) error { return a.CreatePartitions(topic, 4, nil, false) })
	check("CreatePartitions 3 -> 4", err == nil, "%v", err)
	err = admin(func(a sarama.ClusterAdmin) error { return a.CreatePartitions(topic, 2, nil, false) })
	check("shrinking to 2 partitions is INVALID_PARTITIONS", err != nil && strings.Contains(err.Error(), sarama.ErrInvalidPartitions.Error()), "%v", err)
	if err := client.RefreshMetadata(topic); err != nil {
		fail("metadata refresh", "%v", err)
	}

	// An idempotent acks=all SyncProducer: every send acknowledged at the next offset of its partition.
	pconf := config()
	pconf.Producer.RequiredAcks = sarama.WaitForAll
	pconf.Producer.Idempotent = true
	pconf.Net.MaxOpenRequests = 1
	pconf.Producer.Retry.Max = 5
	pconf.Producer.Return.Successes = true
	producer, err := sarama.NewSyncProducer(addrs, pconf)
	if err != nil {
		fail("idempotent SyncProducer starts (InitProducerId)", "%v", err)
		os.Exit(1)
	}
	pass("idempotent SyncProducer starts (InitProducerId)")
	const n = 2000
	var all []sent
	next := map[int32]int64{}
	keyPartition := map[string]int32{}
	inOrder, oneKeyOnePartition := true, true
	var sendErr error
	for i := 0; i < n && sendErr == nil; i++ {
		key, value, headers := record(i)
		p, off, err := producer.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.ByteEncoder(key), Value: sarama.ByteEncoder(value), Headers: headers})
		if err != nil {
			sendErr = err
			break
		}
		if off != next[p] {
			inOrder = false
		}
		next[p] = off + 1
		if q, seen := keyPartition[string(key)]; seen && q != p {
			oneKeyOnePartition = false
		}
		keyPartition[string(key)] = p
		all = append(all, sent{key, value, headerMap([]*sarama.RecordHeader{&headers[0], &headers[1]}), p, off})
	}
	producer.Close()
	check("2000 idempotent acks=all sends acknowledged", sendErr == nil && len(all) == n, "%d sent, %v", len(all), sendErr)
	check("each partition's offsets are 0..n-1 in send order", inOrder, "offsets out of order: %v", next)
	check("one key goes to one partition", oneKeyOnePartition, "a key went to two partitions")

	// Watermarks and the records back through a partition consumer (Fetch v4), byte for byte.
	highs := true
	for p, end := range next {
		h, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		o, err2 := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil || err2 != nil || h != end || o != 0 {
			highs = false
			fail("ListOffsets v1 earliest and latest", "partition %d: earliest %d (%v), latest %d (%v), want 0 and %d", p, o, err2, h, err, end)
		}
	}
	if highs {
		pass("ListOffsets v1 earliest and latest")
	}
	got, err := readAll(client, topic, 4)
	same := err == nil && len(got) == n
	for _, s := range all {
		m := got[[2]int64{int64(s.partition), s.offset}]
		if m == nil || !bytes.Equal(m.Key, s.key) || !bytes.Equal(m.Value, s.value) || fmt.Sprint(headerMap(m.Headers)) != fmt.Sprint(s.headers) || m.Timestamp.IsZero() {
			same = false
			break
		}
	}
	check("every record read back at its offset: key, value, headers, timestamp", same, "read %d of %d: %v", len(got), n, err)

	// Every codec sarama has, through an AsyncProducer that batches. Sarama 1.22 sends zstd in
	// Produce v3, and zstd needs v7 or later (KIP-110): UNSUPPORTED_COMPRESSION_TYPE, from Kafka
	// 4.0 as well.
	for _, codec := range []sarama.CompressionCodec{sarama.CompressionGZIP, sarama.CompressionSnappy, sarama.CompressionLZ4, sarama.CompressionZSTD} {
		name := fmt.Sprintf("%s-%s", topic, codec)
		if err := admin(func(a sarama.ClusterAdmin) error {
			return a.CreateTopic(name, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
		}); err != nil {
			fail(codec.String()+" topic", "%v", err)
			continue
		}
		c := config()
		c.Producer.Compression = codec
		c.Producer.RequiredAcks = sarama.WaitForLocal
		c.Producer.Return.Successes = true
		c.Producer.Flush.Messages = 200
		c.Producer.Flush.Frequency = 5 * time.Millisecond
		ap, err := sarama.NewAsyncProducer(addrs, c)
		if err != nil {
			fail(codec.String()+" producer", "%v", err)
			continue
		}
		const m = 1000
		fed := make(chan struct{})
		go func() {
			for i := 0; i < m; i++ {
				_, value, _ := record(i)
				ap.Input() <- &sarama.ProducerMessage{Topic: name, Value: sarama.ByteEncoder(value)}
			}
			close(fed)
		}()
		// Every message ends as a success or an error; the first error is kept.
		offsets := map[int64]bool{}
		var perr error
		timeout := time.After(30 * time.Second)
		for answered := 0; answered < m; answered++ {
			select {
			case s := <-ap.Successes():
				offsets[s.Offset] = true
			case e := <-ap.Errors():
				if perr == nil {
					perr = e.Err
				}
			case <-timeout:
				perr = fmt.Errorf("timed out with %d acknowledged", len(offsets))
				answered = m
			}
		}
		<-fed
		ap.Close()
		back, rerr := readAll(client, name, 1)
		ok := perr == nil && rerr == nil && len(offsets) == m && len(back) == m
		for i := 0; ok && i < m; i++ {
			_, value, _ := record(i)
			if b := back[[2]int64{0, int64(i)}]; b == nil || !bytes.Equal(b.Value, value) {
				ok = false
			}
		}
		if codec == sarama.CompressionZSTD {
			check("zstd in Produce v3 is UNSUPPORTED_COMPRESSION_TYPE and nothing is appended", perr == sarama.ErrUnsupportedCompressionType && len(offsets) == 0 && rerr == nil && len(back) == 0,
				"produce %v read %v: %d acknowledged, %d read", perr, rerr, len(offsets), len(back))
			continue
		}
		check(fmt.Sprintf("%s batches produced and read back in order", codec), ok, "produce %v read %v: %d acknowledged, %d read", perr, rerr, len(offsets), len(back))
	}

	// A topic with compression.type=zstd keeps its batches in zstd. Kafka 4.0 no longer refuses
	// them to a Fetch before v10 (KIP-110's check went with down-conversion): sarama's Fetch v4
	// gets the zstd batch and decodes it.
	zstdTopic := topic + "-zstd-topic"
	zstd := "zstd"
	err = admin(func(a sarama.ClusterAdmin) error {
		return a.CreateTopic(zstdTopic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: map[string]*string{"compression.type": &zstd}}, false)
	})
	if err == nil {
		zp, perr := sarama.NewSyncProducer(addrs, pconf)
		if perr == nil {
			_, _, err = zp.SendMessage(&sarama.ProducerMessage{Topic: zstdTopic, Value: sarama.StringEncoder("recompressed")})
			zp.Close()
		} else {
			err = perr
		}
	}
	check("a record for a compression.type=zstd topic is acknowledged", err == nil, "%v", err)
	if err == nil {
		back, rerr := readAll(client, zstdTopic, 1)
		m := back[[2]int64{0, 0}]
		check("Fetch v4 of a zstd topic reads the record back", rerr == nil && len(back) == 1 && m != nil && string(m.Value) == "recompressed", "%v, %d records", rerr, len(back))
	}

	// Broker-side refusals: a record over max.message.bytes (the topic's, set above, and the
	// broker's default), a fetch past the end.
	big := config()
	big.Producer.MaxMessageBytes = 4 << 20
	big.Producer.Return.Successes = true
	big.Producer.Retry.Max = 0
	big.Producer.Partitioner = sarama.NewManualPartitioner
	bp, err := sarama.NewSyncProducer(addrs, big)
	if err == nil {
		_, _, err = bp.SendMessage(&sarama.ProducerMessage{Topic: topic + "-gzip", Value: sarama.ByteEncoder(make([]byte, 2<<20))})
		bp.Close()
	}
	check("a 2 MiB record is MESSAGE_TOO_LARGE", err != nil && strings.Contains(err.Error(), sarama.ErrMessageSizeTooLarge.Error()), "%v", err)
	bp, err = sarama.NewSyncProducer(addrs, big)
	if err == nil {
		_, _, err = bp.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.ByteEncoder(make([]byte, 200000))})
		bp.Close()
	}
	check("a 200 kB record is over the altered max.message.bytes", err != nil && strings.Contains(err.Error(), sarama.ErrMessageSizeTooLarge.Error()), "%v", err)
	consumer, err := sarama.NewConsumerFromClient(client)
	if err == nil {
		var pc sarama.PartitionConsumer
		pc, err = consumer.ConsumePartition(topic, 0, next[0]+100)
		if pc != nil {
			pc.Close()
		}
		consumer.Close()
	}
	check("consuming past the end is OFFSET_OUT_OF_RANGE", err == sarama.ErrOffsetOutOfRange, "%v", err)

	// Offsets of a group without members (the offset manager: FindCoordinator, OffsetCommit v2,
	// OffsetFetch v1), kept by the broker and read back by a new client.
	group := "sarama-offsets-" + suffix
	oconf := config()
	oconf.Consumer.Offsets.Retention = 24 * time.Hour // OffsetCommit v2; v1 is gone from Kafka 4.0
	oclient, err := sarama.NewClient(addrs, oconf)
	committed := false
	if err == nil {
		om, err2 := sarama.NewOffsetManagerFromClient(group, oclient)
		if err2 == nil {
			for p := int32(0); p < 4; p++ {
				pom, err3 := om.ManagePartition(topic, p)
				if err3 != nil {
					err = err3
					break
				}
				pom.MarkOffset(next[p], "meta")
				pom.Close()
			}
			om.Close()
			committed = err == nil
		} else {
			err = err2
		}
		oclient.Close()
	}
	check("the offset manager commits with OffsetCommit v2", committed, "%v", err)
	var resp *sarama.OffsetFetchResponse
	err = admin(func(a sarama.ClusterAdmin) (err error) {
		resp, err = a.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2, 3}})
		return
	})
	kept := err == nil
	for p := int32(0); kept && p < 4; p++ {
		b := resp.GetBlock(topic, p)
		kept = b != nil && b.Err == sarama.ErrNoError && b.Offset == next[p] && b.Metadata == "meta"
	}
	check("OffsetFetch v1 gives each committed offset and its metadata", kept, "err %v resp %+v", err, resp)
	var groups map[string]string
	err = admin(func(a sarama.ClusterAdmin) (err error) { groups, err = a.ListConsumerGroups(); return })
	_, listedGroup := groups[group]
	check("ListGroups lists the group", err == nil && listedGroup, "err %v groups %v", err, groups)
	var groupDescribed []*sarama.GroupDescription
	err = admin(func(a sarama.ClusterAdmin) (err error) {
		groupDescribed, err = a.DescribeConsumerGroups([]string{group})
		return
	})
	check("DescribeGroups: the group is Empty", err == nil && len(groupDescribed) == 1 && groupDescribed[0].State == "Empty", "err %v %+v", err, groupDescribed)

	// Refused by Kafka 4.0 as well: OffsetCommit v1 (no retention time) and JoinGroup v1 (the
	// consumer group), both removed by KIP-896; the client sees the connection closed.
	v1client, err := sarama.NewClient(addrs, config())
	if err == nil {
		om, err2 := sarama.NewOffsetManagerFromClient(group, v1client)
		if err2 == nil {
			pom, err3 := om.ManagePartition(topic, 0)
			if err3 == nil {
				pom.MarkOffset(1, "")
				select {
				case e := <-pom.Errors():
					err = e.Err
				case <-time.After(3 * time.Second):
					err = nil
				}
				pom.AsyncClose()
			}
			om.Close()
		}
		v1client.Close()
	}
	resp = nil
	_ = admin(func(a sarama.ClusterAdmin) (err error) {
		resp, err = a.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0}})
		return
	})
	unchanged := resp != nil && resp.GetBlock(topic, 0) != nil && resp.GetBlock(topic, 0).Offset == next[0]
	check("OffsetCommit v1 is refused and commits nothing", unchanged, "after a v1 commit the offset is %+v (commit error %v)", resp, err)
	cg, err := sarama.NewConsumerGroup(addrs, "sarama-group-"+suffix, config())
	joinErr := error(nil)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		joinErr = cg.Consume(ctx, []string{topic}, handler{})
		cancel()
		cg.Close()
	}
	check("a consumer group's JoinGroup v1 is refused", err == nil && joinErr != nil, "new %v consume %v", err, joinErr)

	// Configured for Kafka 0.10.2 (a common setting of sarama applications), sarama sends Produce
	// v2 with a v1 message set, which Kafka 4.0 advertises but does not serve: it closes the
	// connection, and nothing is appended.
	old := config()
	old.Version = sarama.V0_10_2_0
	old.Producer.Return.Successes = true
	old.Producer.Retry.Max = 0
	old.Producer.Partitioner = sarama.NewManualPartitioner
	op, err := sarama.NewSyncProducer(addrs, old)
	if err == nil {
		_, _, err = op.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.StringEncoder("v1 message set")})
		op.Close()
	}
	end0, err2 := client.GetOffset(topic, 0, sarama.OffsetNewest)
	check("Produce v2 (sarama at 0.10.2) is refused and appends nothing", err != nil && err2 == nil && end0 == next[0], "send %v; log end %d (%v), want %d", err, end0, err2, next[0])

	// DeleteRecords and DeleteTopics.
	err = admin(func(a sarama.ClusterAdmin) error { return a.DeleteRecords(topic, map[int32]int64{0: 1}) })
	o, err2 := client.GetOffset(topic, 0, sarama.OffsetOldest)
	check("DeleteRecords moves partition 0's earliest offset to 1", err == nil && err2 == nil && o == 1, "delete %v earliest %d (%v)", err, o, err2)
	err = admin(func(a sarama.ClusterAdmin) error { return a.DeleteTopic(topic) })
	var gone bool
	for i := 0; i < 50 && err == nil; i++ {
		var meta []*sarama.TopicMetadata
		lerr := admin(func(a sarama.ClusterAdmin) (err error) { meta, err = a.DescribeTopics([]string{topic}); return })
		if lerr == nil && len(meta) == 1 && meta[0].Err == sarama.ErrUnknownTopicOrPartition {
			gone = true
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	check("DeleteTopics removes the topic", err == nil && gone, "err %v gone %v", err, gone)
	if failures > 0 {
		os.Exit(1)
	}
}

type handler struct{}

func (handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for range c.Messages() {
	}
	return nil
}

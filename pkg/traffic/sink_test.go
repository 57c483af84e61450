package traffic_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/rollguard/rollguard/pkg/traffic"
)

func TestJSONLines(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	sink := traffic.NewJSONLines(&buf)
	t0 := time.Now()
	in := []traffic.Record{
		{Seq: 0, Intended: t0, Start: t0, Latency: time.Millisecond, Class: traffic.OK, Status: 200},
		{Seq: 1, Node: 1, Intended: t0, Start: t0, Latency: 2 * time.Second, Class: traffic.Refused, Err: "connection refused", Endpoint: "web-1"},
	}
	for _, r := range in {
		sink.Add(r)
	}
	sc := bufio.NewScanner(&buf)
	var out []traffic.Record
	for sc.Scan() {
		var r traffic.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	if len(out) != 2 || out[1].Class != traffic.Refused || out[1].Latency != 2*time.Second || out[1].Endpoint != "web-1" || out[0].Status != 200 {
		t.Errorf("read back %+v", out)
	}
	if sink.Err != nil {
		t.Error(sink.Err)
	}
	bad := traffic.NewJSONLines(failingWriter{})
	bad.Add(in[0])
	if bad.Err == nil {
		t.Error("a write error was not kept")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

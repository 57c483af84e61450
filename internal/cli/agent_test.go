package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollguard/rollguard/internal/cli"
	"github.com/rollguard/rollguard/pkg/agent"
	"github.com/rollguard/rollguard/pkg/traffic"
)

func TestAgentBadFlagsNameTheFlag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"agent", "--max-run", "0s"}, "--max-run 0s"},
		{[]string{"agent", "--max-run", "48h"}, "--max-run 48h0m0s: want more than 0 and at most 24h0m0s"},
		{[]string{"agent", "--shutdown-grace", "-1s"}, "--shutdown-grace -1s"},
		{[]string{"agent", "--listen", "127.0.0.1:http-alt-nope"}, "--listen 127.0.0.1:http-alt-nope"},
		{[]string{"agent", "extra"}, "unknown command"},
	} {
		_, stderr, code := rollguard(t, "", tc.args...)
		if code != cli.ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, cli.ExitUsage, tc.want)
		}
	}
	out, _, code := rollguard(t, "", "agent", "--help")
	if code != 0 || !strings.Contains(out, "run by 'rollguard verify'") || !strings.Contains(out, "not for\ndirect use") {
		t.Errorf("--help: exit %d:\n%s", code, out)
	}
}

// lockedBuffer is an output the command writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAgentStopsAndServesRecords runs `rollguard agent` in-process: told
// to stop (here by its context, as SIGTERM or Ctrl-C do), it ends its run,
// still serves every record for the grace, then exits 0; at --max-run it
// stops by itself.
func TestAgentStopsAndServesRecords(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		args   []string
		cancel bool          // stop by cancelling; otherwise --max-run does
		run    time.Duration // the run's maxDuration
	}{
		{"interrupted", []string{"--shutdown-grace", "5s"}, true, 20 * time.Second},
		{"at --max-run", []string{"--max-run", "6s", "--shutdown-grace", "2s"}, false, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out, errOut lockedBuffer
			exit := make(chan int, 1)
			args := append([]string{"agent", "--listen", "127.0.0.1:0"}, tc.args...)
			go func() {
				exit <- cli.MainContext(ctx, args, cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
			}()

			addr := regexp.MustCompile(`listening on (\S+);`)
			var base string
			for start := time.Now(); base == ""; time.Sleep(10 * time.Millisecond) {
				if m := addr.FindStringSubmatch(out.String()); m != nil {
					base = "http://" + m[1]
				} else if time.Since(start) > time.Minute {
					t.Fatalf("no startup line: stdout %q, stderr %q", out.String(), errOut.String())
				}
			}
			target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }))
			defer target.Close()
			c := &agent.Client{Base: base}
			rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
			defer rcancel()
			err := c.Start(rctx, agent.StartConfig{Target: target.Listener.Addr().String(), Mode: traffic.ModeHTTP, Rate: 100, MaxDuration: tc.run})
			if err != nil {
				t.Fatal(err)
			}
			if tc.cancel {
				time.Sleep(300 * time.Millisecond)
				cancel()
			}
			var p agent.Progress
			for p, err = c.Progress(rctx); err == nil && !p.Done; p, err = c.Progress(rctx) {
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				t.Fatal(err)
			}
			records, _, err := c.Records(rctx)
			if tc.cancel && p.Sent >= 2000 {
				t.Errorf("%d requests: the run went on to its maxDuration, not stopped", p.Sent)
			}
			if err != nil || len(records) != p.Sent || p.Sent == 0 {
				t.Errorf("%d records, %v; want all %d sent", len(records), err, p.Sent)
			}
			select {
			case code := <-exit:
				if code != 0 || errOut.String() != "" {
					t.Errorf("exit %d, stderr %q; want 0 and nothing", code, errOut.String())
				}
			case <-time.After(time.Minute):
				t.Fatal("the agent did not exit after its grace")
			}
			if strings.Count(out.String(), "\n") != 1 {
				t.Errorf("stdout %q: want the startup line only", out.String())
			}
		})
	}
}

package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/rollguard/rollguard/pkg/timeline"
	"github.com/rollguard/rollguard/pkg/traffic"
)

// clockSamples is how many round trips Clock takes; it keeps the fastest.
const clockSamples = 7

// Client talks to one agent. Base is the agent's root URL: through the API
// server's pod proxy (ProxyBase), or the agent itself in tests.
type Client struct {
	Base string
	// HTTP sends the requests; for the pod proxy, rest.HTTPClientFor of
	// the caller's rest.Config. http.DefaultClient when nil.
	HTTP *http.Client
	// Name names the agent in errors (its pod); Base when empty.
	Name string
}

// ProxyBase is the URL of an agent pod's API through the API server's pod
// proxy: .../api/v1/namespaces/NS/pods/POD:PORT/proxy. It keeps a path
// prefix of cfg.Host (an API server behind a relocating proxy).
func ProxyBase(cfg *rest.Config, namespace, pod string, port int) (string, error) {
	u, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return "", fmt.Errorf("the API server's address %q: %w", cfg.Host, err)
	}
	return strings.TrimRight(u.String(), "/") + "/api/v1/namespaces/" + url.PathEscape(namespace) +
		"/pods/" + url.PathEscape(pod) + ":" + strconv.Itoa(port) + "/proxy", nil
}

// StatusError is an agent's (or the pod proxy's) answer other than 2xx.
type StatusError struct {
	Agent, Method, Path string
	Code                int
	Message             string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("agent %s: %s %s: %d %s: %s", e.Agent, e.Method, e.Path, e.Code, http.StatusText(e.Code), e.Message)
}

func (c *Client) name() string {
	if c.Name != "" {
		return c.Name
	}
	return c.Base
}

// Clock estimates the agent's clock offset the way NTP does: over the
// round trip with the smallest time, offset = agent's now - (t0+t1)/2, and
// the true offset is within bound = (t1-t0)/2 of it. Subtract offset from
// the agent's timestamps to put them on this machine's clock.
func (c *Client) Clock(ctx context.Context) (offset, bound time.Duration, err error) {
	bound = -1
	for range clockSamples {
		var got clock
		t0 := time.Now()
		if err := c.call(ctx, http.MethodGet, "/clock", nil, &got); err != nil {
			return 0, 0, err
		}
		rtt := time.Since(t0) // monotonic
		mid := t0.Add(rtt / 2)
		if bound < 0 || rtt/2 < bound {
			offset, bound = time.Unix(0, got.Now).Sub(mid), rtt/2
		}
	}
	return offset, bound, nil
}

// Start starts the agent's run.
func (c *Client) Start(ctx context.Context, cfg StartConfig) error {
	return c.call(ctx, http.MethodPost, "/start", cfg, nil)
}

// Probe sets the full set of pods the agent's prober dials: those not
// listed any more are forgotten. Before Start, the set waits for it.
func (c *Client) Probe(ctx context.Context, targets []Target) error {
	if targets == nil {
		targets = []Target{} // the empty set, not null
	}
	return c.call(ctx, http.MethodPost, "/probe", targets, nil)
}

// Progress returns the run's counts so far.
func (c *Client) Progress(ctx context.Context) (Progress, error) {
	var p Progress
	err := c.call(ctx, http.MethodGet, "/progress", nil, &p)
	return p, err
}

// Stop ends the run and returns once the agent has recorded every request
// it sent. Calling it again does no harm.
func (c *Client) Stop(ctx context.Context) error {
	return c.call(ctx, http.MethodPost, "/stop", nil, nil)
}

// Records fetches every record and prober event of a finished run. It
// fails, saying how much arrived, when the stream was cut: fetch again.
func (c *Client) Records(ctx context.Context) ([]traffic.Record, []timeline.Event, error) {
	resp, err := c.do(ctx, http.MethodGet, "/records", nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(resp.Body, 64<<10))
	var first line
	if err := dec.Decode(&first); err != nil || first.Begin == nil {
		why := "its first line is not the counts"
		if err != nil {
			why = err.Error()
		}
		return nil, nil, fmt.Errorf("agent %s: GET /records: not a record stream (%s): is the agent the same version as this rollguard?", c.name(), why)
	}
	want := *first.Begin
	records := make([]traffic.Record, 0, min(want.Records, MaxRecords))
	events := make([]timeline.Event, 0, min(want.Events, 4096))
	for {
		var l line
		if err := dec.Decode(&l); err != nil {
			return nil, nil, fmt.Errorf("agent %s: got %d of %d records and %d of %d events: the stream was cut (%v); fetch the records again",
				c.name(), len(records), want.Records, len(events), want.Events, err)
		}
		switch {
		case l.R != nil:
			records = append(records, *l.R)
		case l.E != nil:
			events = append(events, *l.E)
		case l.End != nil:
			if *l.End != want || len(records) != want.Records || len(events) != want.Events {
				return nil, nil, fmt.Errorf("agent %s: got %d of %d records and %d of %d events (end line: %d and %d): the stream lost lines; fetch the records again",
					c.name(), len(records), want.Records, len(events), want.Events, l.End.Records, l.End.Events)
			}
			return records, events, nil
		default:
			return nil, nil, fmt.Errorf("agent %s: GET /records: a line that is neither a record, an event nor the end, after %d records: is the agent the same version as this rollguard?",
				c.name(), len(records))
		}
	}
}

// call sends a request with body as JSON and decodes a JSON answer into
// out, if any.
func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("agent %s: %s %s: reading the answer: %w", c.name(), method, path, err)
	}
	return nil
}

// do sends a request and returns a 2xx response; any other status becomes
// a *StatusError with the server's message.
func (c *Client) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("agent %s: %s %s: %w", c.name(), method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.Base, "/")+path, rd)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %s %s: %w", c.name(), method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %s %s: %w", c.name(), method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return nil, &StatusError{Agent: c.name(), Method: method, Path: path, Code: resp.StatusCode, Message: message(msg)}
}

// message is the text of an error body: the agent's plain text, or the
// message of a Kubernetes Status when the pod proxy itself answered (no
// such pod, pod not running).
func message(body []byte) string {
	var st struct {
		Kind    string `json:"kind"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &st) == nil && st.Kind == "Status" && st.Message != "" {
		return st.Message
	}
	if s := strings.TrimSpace(string(body)); s != "" {
		return s
	}
	return "(no message)"
}

// IsConflict reports whether err is an agent's 409: a start after the
// run began, a stop or records before it, or a probe after it ended.
func IsConflict(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusConflict
}

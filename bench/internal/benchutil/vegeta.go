package benchutil

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// VegetaResult is what the benches read of one vegeta result. Timestamp
// is taken when a worker begins the hit, together with Seq under one lock
// (vegeta's lib/attack.go, hit).
type VegetaResult struct {
	Seq       int64     `json:"seq"`
	Code      int       `json:"code"`
	Timestamp time.Time `json:"timestamp"`
	Error     string    `json:"error"`
}

// Failed reports whether the request failed: an error, or a status
// outside 2xx and 3xx.
func (r VegetaResult) Failed() bool { return r.Error != "" || r.Code < 200 || r.Code >= 400 }

// VegetaOpen runs `vegeta attack` open loop at rate for d against
// http://addr/, with 10 workers growing to MaxWorkers and a Timeout per
// request, its results into a file in tmp (vegeta's own gob encoding, as
// it streams them during the attack), then `vegeta encode -to json` to
// read them back. Both are bounded by d+RunSlack.
func VegetaOpen(bin, tmp, addr string, rate int, d time.Duration, keepalive bool) ([]VegetaResult, error) {
	out := filepath.Join(tmp, "vegeta.bin")
	defer os.Remove(out)
	ctx, cancel := context.WithTimeout(context.Background(), d+RunSlack)
	defer cancel()
	attack := exec.CommandContext(ctx, bin, "attack", fmt.Sprintf("-rate=%d/1s", rate), "-duration="+d.String(),
		fmt.Sprintf("-keepalive=%v", keepalive), "-workers=10", fmt.Sprintf("-max-workers=%d", MaxWorkers),
		"-timeout="+Timeout.String(), "-output="+out)
	attack.Stdin = strings.NewReader("GET http://" + addr + "/\n")
	attack.Stderr = os.Stderr
	if err := attack.Run(); err != nil {
		return nil, fmt.Errorf("vegeta attack: %w", err)
	}
	enc := exec.CommandContext(ctx, bin, "encode", "-to=json", out)
	enc.Stderr = os.Stderr
	pipe, err := enc.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := enc.Start(); err != nil {
		return nil, fmt.Errorf("vegeta encode: %w", err)
	}
	var results []VegetaResult
	dec := json.NewDecoder(bufio.NewReader(pipe))
	for {
		var r VegetaResult
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			_ = enc.Process.Kill()
			_ = enc.Wait()
			return nil, fmt.Errorf("vegeta encode output: %w", err)
		}
		results = append(results, r)
	}
	if err := enc.Wait(); err != nil {
		return nil, fmt.Errorf("vegeta encode: %w", err)
	}
	return results, nil
}

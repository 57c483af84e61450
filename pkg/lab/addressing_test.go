package lab_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rollguard/rollguard/pkg/lab"
	"github.com/rollguard/rollguard/pkg/traffic"
)

// TestPortPerPodDefaultScenarios plays the default scenarios the way they
// run on macOS, where loopback has only 127.0.0.1 and each pod gets a port
// of it instead of an address. The losses must look the same as with an
// address per pod: Case 1 and Case 2 with neither fix, only the other
// case with one fix, nothing with both; refusals, not timeouts, because a
// pod's port refuses before it listens and after it has closed; and the
// diagnosis held to the ground truth as in TestDefaultScenarios.
//
// Not parallel: TestDefaultScenarios holds the lab to 1% late requests,
// and four more scenarios at the same time could make a two-core machine
// miss that.
func TestPortPerPodDefaultScenarios(t *testing.T) {
	base := lab.Base()
	base.Addressing = lab.PortPerPod
	results, err := lab.RunAll(context.Background(), lab.Standard(base, 3*time.Second, lab.Probe{Period: time.Second}), 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 4 {
		t.Fatalf("%d results", len(results))
	}
	want := []struct{ case1, case2 bool }{{true, true}, {false, true}, {true, false}, {false, false}}
	for i, r := range results {
		checkDiagnosis(t, r, want[i].case1, want[i].case2)
		if last := i == 3; last != r.Lossless() {
			t.Errorf("%s: lossless %v", r.Scenario.Name, r.Lossless())
		}
		if n := r.Summary.ByClass[traffic.ConnectTimeout] + r.Summary.ByClass[traffic.ResponseTimeout]; n > 0 {
			t.Errorf("%s: %d timeouts; a pod's port must refuse, as its own address does", r.Scenario.Name, n)
		}
		if !r.Lossless() && r.Summary.ByClass[traffic.Refused] == 0 {
			t.Errorf("%s: no refusals among %v", r.Scenario.Name, r.Summary.ByClass)
		}
		if r.RolloutTook == 0 || r.Partial {
			t.Errorf("%s: the rollout did not complete", r.Scenario.Name)
		}
		ports := map[string]string{}
		for pod, addr := range r.Addrs {
			host, port, err := net.SplitHostPort(addr)
			if err != nil || host != "127.0.0.1" {
				t.Errorf("%s: pod %s at %s; want a port of 127.0.0.1", r.Scenario.Name, pod, addr)
				continue
			}
			if other, dup := ports[port]; dup {
				t.Errorf("%s: pods %s and %s share port %s", r.Scenario.Name, other, pod, port)
			}
			ports[port] = pod
		}
	}
}

// TestUnknownAddressing: a mode the lab does not know stops the run before
// anything listens.
func TestUnknownAddressing(t *testing.T) {
	t.Parallel()
	s := fast()
	s.Addressing = "one-address"
	if _, err := lab.Run(context.Background(), s, 0); err == nil || !strings.Contains(err.Error(), "addressing") {
		t.Errorf("got %v, want an error about the addressing", err)
	}
}

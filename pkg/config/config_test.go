package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rollguard/rollguard/pkg/config"
	"github.com/rollguard/rollguard/pkg/rules"
)

func TestParse(t *testing.T) {
	t.Parallel()
	reg := rules.Default()
	cfg, err := config.Parse([]byte(`apiVersion: rollguard.io/v1alpha1
kind: Config
propagationBudget: 8s
drainAllowance: 1m
failOn: warning
disabledRules: [RG304, pdb-missing]
severity: {RG305: error, readiness-equals-liveness: info}
ignorePaths: ["test/**"]
`), reg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PropagationBudget != 8*time.Second || cfg.DrainAllowance != time.Minute || cfg.FailOn != rules.Warning {
		t.Errorf("settings %+v", cfg)
	}
	if !cfg.Disabled[reg.Lookup("RG304")] || !cfg.Disabled[reg.Lookup("RG401")] || len(cfg.Disabled) != 2 {
		t.Errorf("disabled %v", cfg.Disabled)
	}
	if cfg.Severity[reg.Lookup("RG305")] != rules.Error || cfg.Severity[reg.Lookup("RG204")] != rules.Info {
		t.Errorf("severity %v", cfg.Severity)
	}
	if len(cfg.IgnorePaths) != 1 {
		t.Errorf("ignorePaths %v", cfg.IgnorePaths)
	}
	if empty, err := config.Parse(nil, reg); err != nil || empty.PropagationBudget != 0 {
		t.Errorf("an empty file: %v %+v", err, empty)
	}
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ text, want string }{
		{"propagationBudgett: 5s\n", "propagationBudgett"},
		{"propagationBudget: soon\n", "propagationBudget"},
		{"drainAllowance: -5s\n", "drainAllowance"},
		{"failOn: fatal\n", "failOn"},
		{"disabledRules: [RG999]\n", `unknown rule "RG999"`},
		{"severity: {RG101: loud}\n", "severity of RG101"},
		{"severity: {nope: info}\n", `unknown rule "nope"`},
		{"apiVersion: v2\n", "apiVersion"},
		{"kind: Policy\n", "kind"},
		{"[not, a, mapping]\n", "cannot unmarshal"},
		{"telemetryPorts: [\"[bad\"]\n", "telemetryPorts"},
	} {
		if _, err := config.Parse([]byte(tc.text), rules.Default()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error about %s", tc.text, err, tc.want)
		}
	}
}

func TestTelemetryPorts(t *testing.T) {
	t.Parallel()
	for text, want := range map[string][]string{
		"failOn: error\n":                    nil, // unset: the model's defaults
		"telemetryPorts: []\n":               {},  // none
		"telemetryPorts: [admin, \"*-m\"]\n": {"admin", "*-m"},
	} {
		cfg, err := config.Parse([]byte(text), rules.Default())
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if (cfg.TelemetryPorts == nil) != (want == nil) || strings.Join(cfg.TelemetryPorts, ",") != strings.Join(want, ",") {
			t.Errorf("%q: got %#v, want %#v", text, cfg.TelemetryPorts, want)
		}
	}
}

// TestZeroDuration: "0s" is a duration (the value unset), not an error;
// a negative one is.
func TestZeroDuration(t *testing.T) {
	t.Parallel()
	reg := rules.Default()
	cfg, err := config.Parse([]byte("propagationBudget: 0s\n"), reg)
	if err != nil || cfg.PropagationBudget != 0 {
		t.Errorf("0s: %v, %v", cfg, err)
	}
	if _, err := config.Parse([]byte("drainAllowance: -1s\n"), reg); err == nil {
		t.Error("a negative duration was accepted")
	}
	cfg, err = config.Parse([]byte("deny: [RG201]\n"), reg)
	if err != nil || !cfg.Deny[reg.Lookup("RG201")] || len(cfg.Deny) != 1 {
		t.Errorf("deny: %v, %v", cfg, err)
	}
	if _, err := config.Parse([]byte("deny: [RG999]\n"), reg); err == nil || !strings.Contains(err.Error(), "deny: unknown rule") {
		t.Errorf("deny of an unknown rule: %v", err)
	}
}

func TestK8sVersion(t *testing.T) {
	t.Parallel()
	reg := rules.Default()
	for text, want := range map[string]int{`k8sVersion: "1.29"`: 29, "k8sVersion: v1.31.4": 31, `k8sVersion: "1.30.0"`: 30, "": 0, "k8sVersion: v1.29.3-eks-ae9a62a": 29, "k8sVersion: v1.29.1-gke.1589000": 29, "k8sVersion: v1.31.2+k3s1": 31} {
		cfg, err := config.Parse([]byte(text+"\n"), reg)
		if err != nil || cfg.KubeMinor != want {
			t.Errorf("%q: %v, %v; want minor %d", text, cfg, err, want)
		}
	}
	for _, text := range []string{"k8sVersion: 2.1", "k8sVersion: 1.x", `k8sVersion: "129"`, "k8sVersion: latest", "k8sVersion: v1.29.3 eks"} {
		if _, err := config.Parse([]byte(text+"\n"), reg); err == nil || !strings.Contains(err.Error(), "k8sVersion: ") || !strings.Contains(err.Error(), "such as 1.29") {
			t.Errorf("%q: %v", text, err)
		}
	}
}

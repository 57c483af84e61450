package model_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/rollguard/rollguard/pkg/model"
)

func execHook(cmd ...string) *corev1.Container {
	return &corev1.Container{Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: cmd}}}}
}

func withEnv(c *corev1.Container, kv ...string) *corev1.Container {
	for i := 0; i+1 < len(kv); i += 2 {
		c.Env = append(c.Env, corev1.EnvVar{Name: kv[i], Value: kv[i+1]})
	}
	return c
}

func TestParsePreStop(t *testing.T) {
	t.Parallel()
	const s = time.Second
	type want struct {
		kind      model.PreStopKind
		known     bool
		delay     time.Duration
		stops     bool
		signals   bool
		sleepOnly bool
		shell     bool
		needs     string // comma-separated
	}
	for _, tc := range []struct {
		name string
		c    *corev1.Container
		want want
	}{
		{"none", &corev1.Container{}, want{kind: model.PreStopNone}},
		{"native", &corev1.Container{Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 7}}}},
			want{kind: model.PreStopSleep, known: true, delay: 7 * s, sleepOnly: true}},
		{"sleep binary", execHook("/bin/sleep", "5"), want{kind: model.PreStopExec, known: true, delay: 5 * s, sleepOnly: true, needs: "sleep"}},
		{"sleep adds operands like GNU sleep", execHook("sleep", "1m", "30"), want{kind: model.PreStopExec, known: true, delay: 90 * s, sleepOnly: true, needs: "sleep"}},
		{"shell sleep", execHook("sh", "-c", "sleep 10"), want{kind: model.PreStopExec, known: true, delay: 10 * s, sleepOnly: true, shell: true, needs: "sh,sleep"}},
		{"bash -ec with units", execHook("/bin/bash", "-ec", "sleep 1m"), want{kind: model.PreStopExec, known: true, delay: time.Minute, sleepOnly: true, shell: true, needs: "bash,sleep"}},
		{"bash --norc -c", execHook("bash", "--norc", "-c", "sleep 4"), want{kind: model.PreStopExec, known: true, delay: 4 * s, sleepOnly: true, shell: true, needs: "bash,sleep"}},
		{"sh -o pipefail -c", execHook("sh", "-o", "pipefail", "-c", "sleep 4"), want{kind: model.PreStopExec, known: true, delay: 4 * s, sleepOnly: true, shell: true, needs: "sh,sleep"}},
		{"busybox", execHook("busybox", "sh", "-c", "sleep 2.5"), want{kind: model.PreStopExec, known: true, delay: 2500 * time.Millisecond, sleepOnly: true, shell: true, needs: "busybox,sleep"}},
		{"sleep then nginx quit", execHook("sh", "-c", "sleep 3; nginx -s quit"), want{kind: model.PreStopExec, known: true, delay: 3 * s, stops: true, shell: true, needs: "sh,sleep,nginx"}},
		{"nginx quit at once", execHook("sh", "-c", "nginx -s quit"), want{kind: model.PreStopExec, known: true, stops: true, shell: true, needs: "sh,nginx"}},
		{"bitnami: quit, then wait for the exit", execHook("/bin/bash", "-c", "nginx -s quit; while killall -0 nginx; do sleep 1; done"),
			want{kind: model.PreStopExec, known: true, stops: true, shell: true, needs: "bash,nginx"}},
		{"kill -QUIT 1 stops", execHook("kill", "-QUIT", "1"), want{kind: model.PreStopExec, known: true, stops: true, needs: "kill"}},
		{"kill 1 sends SIGTERM", execHook("sh", "-c", "kill 1"), want{kind: model.PreStopExec, known: true, signals: true, shell: true, needs: "sh"}},
		{"kill -s TERM with a command substitution", execHook("sh", "-c", "sleep 2 && kill -s TERM $(pidof app)"), want{kind: model.PreStopExec, known: true, delay: 2 * s, signals: true, shell: true, needs: "sh,sleep"}},
		{"apachectl graceful-stop", execHook("apachectl", "-k", "graceful-stop"), want{kind: model.PreStopExec, known: true, stops: true, needs: "apachectl"}},
		{"ingress-nginx wait-shutdown", execHook("/wait-shutdown"), want{kind: model.PreStopExec, known: true, signals: true, needs: "wait-shutdown"}},
		{"echo is harmless", execHook("sh", "-c", "echo bye > /proc/1/fd/1; sleep 6"), want{kind: model.PreStopExec, known: true, delay: 6 * s, shell: true, needs: "sh,sleep"}},
		{"a background sleep delays nothing", execHook("sh", "-c", "sleep 30 & nginx -s quit"), want{kind: model.PreStopExec, known: true, stops: true, shell: true, needs: "sh,sleep,nginx"}},
		{"shell variable from env", withEnv(execHook("sh", "-c", "sleep $DRAIN"), "DRAIN", "15"), want{kind: model.PreStopExec, known: true, delay: 15 * s, sleepOnly: true, shell: true, needs: "sh,sleep"}},
		{"no $(VAR) expansion in hooks: sleep gets a literal and fails", withEnv(execHook("sleep", "$(DRAIN)"), "DRAIN", "8"), want{kind: model.PreStopExec, needs: "sleep"}},
		{"$(VAR) in a shell hook is a command substitution", withEnv(execHook("sh", "-c", "sleep $(DRAIN)"), "DRAIN", "8"), want{kind: model.PreStopExec, shell: true, needs: "sh"}},
		{"pkill -f sends SIGTERM", execHook("pkill", "-f", "myapp"), want{kind: model.PreStopExec, known: true, signals: true, needs: "pkill"}},
		{"kill -n 15 sends SIGTERM", execHook("kill", "-n", "15", "1"), want{kind: model.PreStopExec, known: true, signals: true, needs: "kill"}},
		{"kill -HUP reloads, then the sleep counts", execHook("sh", "-c", "kill -HUP 1; sleep 10"), want{kind: model.PreStopExec, known: true, delay: 10 * s, shell: true, needs: "sh,sleep"}},
		{"busybox sleep needs busybox only", execHook("busybox", "sleep", "5"), want{kind: model.PreStopExec, known: true, delay: 5 * s, sleepOnly: true, needs: "busybox"}},
		{"kourier: envoy graceful drain, then sleep", withEnv(execHook("/bin/sh", "-c", "curl -X POST http://localhost:9901/drain_listeners?graceful; sleep $DRAIN_TIME_SECONDS"), "DRAIN_TIME_SECONDS", "15"),
			want{kind: model.PreStopExec, known: true, delay: 15 * s, shell: true, needs: "sh,curl,sleep"}},
		{"unset variable: unknown", execHook("sh", "-c", "sleep $NOPE"), want{kind: model.PreStopExec, shell: true, needs: "sh"}},
		{"custom binary: unknown", execHook("/custom-drain", "--wait"), want{kind: model.PreStopExec, needs: "custom-drain"}},
		{"sleep, then a custom binary: unknown, at least the sleep", execHook("sh", "-c", "sleep 6; /drain"), want{kind: model.PreStopExec, shell: true, needs: "sh,sleep,drain"}},
		{"a loop before any stop: unknown", execHook("sh", "-c", "while [ -f /tmp/busy ]; do sleep 1; done"), want{kind: model.PreStopExec, shell: true, needs: "sh"}},
		{"not a sleep word", execHook("sh", "-c", "nosleep 5"), want{kind: model.PreStopExec, shell: true, needs: "sh,nosleep"}},
		{"script file", execHook("sh", "/drain.sh"), want{kind: model.PreStopExec, needs: "sh"}},
		{"http of unknown effect", &corev1.Container{Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/shutdown"}}}},
			want{kind: model.PreStopHTTP}},
		{"envoy quitquitquit over http", &corev1.Container{Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/quitquitquit"}}}},
			want{kind: model.PreStopHTTP, known: true, stops: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := model.ParsePreStop(tc.c)
			got := want{p.Kind, p.Known, p.Delay, p.Stops, p.Signals, p.SleepOnly, p.Shell, strings.Join(p.Needs, ",")}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v (unknown: %q)", got, tc.want, p.Unknown)
			}
			if !p.Known && p.Kind != model.PreStopNone && p.Unknown == "" {
				t.Error("an unknown hook must say why")
			}
		})
	}
}

func TestContainerShutdown(t *testing.T) {
	t.Parallel()
	const s = time.Second
	nginx := func(args ...string) *corev1.Container {
		c := execHook("/wait-shutdown")
		c.Args = args
		return c
	}
	for _, tc := range []struct {
		name  string
		c     *corev1.Container
		ann   map[string]string
		delay time.Duration
		from  string
	}{
		{"no hook, no app delay", &corev1.Container{}, nil, 0, ""},
		{"annotation counts when there is no hook", &corev1.Container{}, map[string]string{model.ShutdownDelayAnnotation: "3s"}, 3 * s, "annotation"},
		{"annotation adds to a sleep", execHook("sleep", "2"), map[string]string{model.ShutdownDelayAnnotation: "3s"}, 5 * s, "annotation"},
		{"a hook that stops the app makes the app's delay moot", execHook("nginx", "-s", "quit"), map[string]string{model.ShutdownDelayAnnotation: "9s"}, 0, "annotation"},
		{"ingress-nginx default: no grace period", nginx("/nginx-ingress-controller"), nil, 0, ""},
		{"ingress-nginx --shutdown-grace-period=10", nginx("/nginx-ingress-controller", "--shutdown-grace-period=10"), nil, 10 * s, "flag --shutdown-grace-period"},
		{"a flag as a separate argument, a duration", &corev1.Container{Args: []string{"--shutdown-delay-duration", "20s"}}, nil, 20 * s, "flag --shutdown-delay-duration"},
		{"an unreadable annotation is ignored", &corev1.Container{}, map[string]string{model.ShutdownDelayAnnotation: "soon"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sd := model.ContainerShutdown(tc.c, tc.ann)
			if !sd.Known() || sd.Delay() != tc.delay || !strings.HasPrefix(sd.InAppFrom, tc.from) {
				t.Errorf("delay %s from %q (known %v), want %s from %q; %s", sd.Delay(), sd.InAppFrom, sd.Known(), tc.delay, tc.from, sd.Describe())
			}
		})
	}
	if sd := model.ContainerShutdown(execHook("/custom")); sd.Known() {
		t.Error("a hook of unknown effect made the shutdown known")
	}
}

func TestImageHas(t *testing.T) {
	t.Parallel()
	c := &corev1.Container{Command: []string{"/bin/sh", "-c", "exec app"},
		LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/ok"}}}}}
	for bin, want := range map[string]bool{"sh": true, "cat": true, "bash": false, "sleep": false} {
		if got := model.ImageHas(c, bin); got != want {
			t.Errorf("ImageHas(%q) = %v, want %v", bin, got, want)
		}
	}
	if model.ImageHas(&corev1.Container{}, "sh") {
		t.Error("a container with no command demonstrates nothing")
	}
}

func TestPreStopAtLeast(t *testing.T) {
	t.Parallel()
	if p := model.ParsePreStop(execHook("sh", "-c", "sleep 6; /drain")); p.Known || p.AtLeast != 6*time.Second {
		t.Errorf("got known %v at least %s, want unknown, at least 6s", p.Known, p.AtLeast)
	}
	if p := model.ParsePreStop(execHook("sh", "-c", "/drain; sleep 6")); p.AtLeast != 0 {
		t.Errorf("a sleep after the unknown command counted: at least %s", p.AtLeast)
	}
}

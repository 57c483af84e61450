package model_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/rollguard/rollguard/pkg/model"
)

// TestParsePreStopCommands covers the commands and shell forms the hook
// reader knows, beyond TestParsePreStop: each alias of a known command,
// the signals kill can send, sleep's units and the shell's flags.
func TestParsePreStopCommands(t *testing.T) {
	t.Parallel()
	const s = time.Second
	type want struct {
		known          bool
		delay          time.Duration
		stops, signals bool
	}
	sleeps := func(d time.Duration) want { return want{known: true, delay: d} }
	stops := want{known: true, stops: true}
	signals := want{known: true, signals: true}
	harmless := want{known: true}
	unknown := want{}
	for _, tc := range []struct {
		name string
		cmd  []string
		want want
	}{
		{"sleep with s", []string{"sleep", "2s"}, sleeps(2 * s)},
		{"sleep with h", []string{"sleep", "0.5h"}, sleeps(30 * time.Minute)},
		{"sleep with d", []string{"sleep", "1d"}, sleeps(24 * time.Hour)},
		{"sleep with no operand", []string{"sleep"}, unknown},
		{"sleep 0 is known and no delay", []string{"sleep", "0"}, harmless},
		{"killall with no signal sends TERM", []string{"killall", "app"}, signals},
		{"pkill -QUIT stops", []string{"pkill", "-QUIT", "nginx"}, stops},
		{"pkill -u USER -QUIT: the user is not a signal", []string{"pkill", "-u", "www-data", "-QUIT", "nginx"}, stops},
		{"kill -n QUIT", []string{"kill", "-n", "QUIT", "1"}, stops},
		{"pkill -n is the newest process, not a signal", []string{"pkill", "-n", "nginx"}, signals},
		{"pkill -o (the oldest) takes no value", []string{"pkill", "-o", "-QUIT", "nginx"}, stops},
		{"killall -g (the process group) takes no value", []string{"killall", "-g", "-QUIT", "app"}, stops},
		{"killall -o TIME -QUIT: the age is not a signal", []string{"killall", "-o", "5m", "-QUIT", "app"}, stops},
		{"killall xkill: a name is no signal", []string{"killall", "xkill"}, signals},
		{"kill -s QUIT", []string{"kill", "-s", "QUIT", "1"}, stops},
		{"kill -s SIGTERM", []string{"kill", "-s", "SIGTERM", "1"}, signals},
		{"kill --signal TERM", []string{"kill", "--signal", "TERM", "1"}, signals},
		{"kill --signal=SIGQUIT", []string{"kill", "--signal=SIGQUIT", "1"}, stops},
		{"kill -15", []string{"kill", "-15", "1"}, signals},
		{"kill -9", []string{"kill", "-9", "1"}, stops},
		{"kill -- 1 sends TERM", []string{"kill", "--", "1"}, signals},
		{"kill -s with no signal sends TERM", []string{"kill", "-s"}, signals},
		{"kill -0 only checks", []string{"kill", "-0", "1"}, harmless},
		{"kill -l lists", []string{"kill", "-l"}, harmless},
		{"openresty -s quit", []string{"openresty", "-s", "quit"}, stops},
		{"nginx -s stop", []string{"nginx", "-s", "stop"}, stops},
		{"nginx -t tests", []string{"nginx", "-t"}, harmless},
		{"nginx -s reload", []string{"nginx", "-s", "reload"}, harmless},
		{"nginx reload without -s is not known", []string{"nginx", "reload"}, unknown},
		{"nginx quit without -s is not known", []string{"nginx", "quit"}, unknown},
		{"apache2ctl stop", []string{"apache2ctl", "stop"}, stops},
		{"httpd -k graceful-stop", []string{"httpd", "-k", "graceful-stop"}, stops},
		{"apachectl start is not known", []string{"apachectl", "start"}, unknown},
		{"wget envoy quitquitquit", []string{"wget", "-qO-", "http://127.0.0.1:15000/quitquitquit"}, stops},
		{"curl envoy drain, not graceful", []string{"curl", "-X", "POST", "http://localhost:9901/drain_listeners"}, stops},
		{"curl envoy healthcheck fail", []string{"curl", "-X", "POST", "http://localhost:9901/healthcheck/fail"}, harmless},
		{"curl of an app endpoint", []string{"curl", "http://localhost:8080/shutdown"}, unknown},
		{"curl without a URL", []string{"curl", "-s"}, unknown},
		{"exec runs its command", []string{"exec", "sleep", "3"}, sleeps(3 * s)},
		{"nohup runs its command", []string{"nohup", "kill", "1"}, signals},
		{"command runs its command", []string{"command", "sleep", "4"}, sleeps(4 * s)},
		{"busybox sleep", []string{"busybox", "sleep", "2"}, sleeps(2 * s)},
		{"logger is harmless", []string{"logger", "bye"}, harmless},
		{"a script ends at exit", []string{"sh", "-c", "exit 0; sleep 9"}, harmless},
		{"sh +e -c", []string{"sh", "+e", "-c", "sleep 2"}, sleeps(2 * s)},
		{"sh -e -c", []string{"sh", "-e", "-c", "sleep 2"}, sleeps(2 * s)},
		{"sh +o errexit -c", []string{"sh", "+o", "errexit", "-c", "sleep 2"}, sleeps(2 * s)},
		{"bash --rcfile FILE -c", []string{"bash", "--rcfile", "/etc/rc", "-c", "sleep 2"}, sleeps(2 * s)},
		{"bash --init-file FILE -c", []string{"bash", "--init-file", "/etc/rc", "-c", "sleep 2"}, sleeps(2 * s)},
		{"sh -c -- SCRIPT", []string{"sh", "-c", "--", "sleep 2"}, sleeps(2 * s)},
		{"sh -c with nothing after it", []string{"sh", "-c"}, unknown},
		{"sh -ec", []string{"sh", "-ec", "sleep 2; kill -QUIT 1"}, want{known: true, delay: 2 * s, stops: true}},
		{"a subshell and a block", []string{"sh", "-c", "(sleep 1); { sleep 2; }"}, sleeps(3 * s)},
		{"a function is not followed", []string{"sh", "-c", "f() { sleep 9; }; f"}, unknown},
		{"a command substitution as the command", []string{"sh", "-c", "$(which sleep) 5"}, unknown},
		{"a script that does not parse", []string{"sh", "-c", "sleep 5; fi"}, unknown},
		{"shells nested too deeply", []string{"sh", "-c", `sh -c "sh -c \"sh -c 'sh -c \\\"sleep 1\\\"'\""`}, unknown},
		{"assignments only", []string{"sh", "-c", "A=1; sleep 2"}, sleeps(2 * s)},
		{"sh -c SCRIPT NAME: the script is the first operand", []string{"sh", "-c", "sleep 2", "hook"}, sleeps(2 * s)},
		{"sh with flags and no script", []string{"sh", "-e"}, unknown},
		{"busybox alone", []string{"busybox"}, unknown},
		{"exec with nothing to run", []string{"sh", "-c", "exec"}, harmless},
		{"four shells deep", []string{"sh", "-c", `sh -c "sh -c 'sh -c \"sleep 1\"'"`}, sleeps(1 * s)},
		{"five shells deep", []string{"sh", "-c", `sh -c "sh -c 'sh -c \"sh -c sleep\\ 1\"'"`}, unknown},
		{"shells one after another", []string{"sh", "-c", "sh -c 'sleep 1'; sh -c 'sleep 1'; sh -c 'sleep 1'; sh -c 'sleep 1'"}, sleeps(4 * s)},
		{"pkill with an unresolved pattern, then a signal", []string{"sh", "-c", "pkill $APP --signal QUIT"}, stops},
		{"sleep with an empty operand", []string{"sleep", ""}, unknown},
		{"sleep with a word", []string{"sleep", "soon"}, unknown},
		{"sleep with a negative number", []string{"sleep", "-1"}, unknown},
		{"sleep with an exponent", []string{"sleep", "1e3"}, unknown},
		{"sleep infinity", []string{"sleep", "infinity"}, unknown},
		{"sleep inf", []string{"sleep", "inf"}, unknown},
		{"sleep nan", []string{"sleep", "nan"}, unknown},
		{"sleep with a digit separator, which sleep rejects", []string{"sleep", "1_0"}, unknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := model.ParsePreStop(execHook(tc.cmd...))
			got := want{p.Known, p.Delay, p.Stops, p.Signals}
			if got != tc.want {
				t.Errorf("got %+v, want %+v (unknown: %q)", got, tc.want, p.Unknown)
			}
			if !p.Known && p.Unknown == "" {
				t.Error("an unknown hook must say why")
			}
		})
	}
}

func TestParsePreStopHandlers(t *testing.T) {
	t.Parallel()
	handler := func(h corev1.LifecycleHandler) *corev1.Container {
		return &corev1.Container{Lifecycle: &corev1.Lifecycle{PreStop: &h}}
	}
	for _, tc := range []struct {
		name    string
		c       *corev1.Container
		kind    model.PreStopKind
		known   bool
		stops   bool
		unknown string // why, when not known
	}{
		{"a lifecycle without preStop", &corev1.Container{Lifecycle: &corev1.Lifecycle{}}, model.PreStopNone, false, false, ""},
		{"an exec hook with an empty command", handler(corev1.LifecycleHandler{Exec: &corev1.ExecAction{}}), model.PreStopExec, false, false, "has no command"},
		{"a handler of no known kind", handler(corev1.LifecycleHandler{}), model.PreStopExec, false, false, "has no command"},
		{"envoy graceful drain over http", handler(corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/drain_listeners?graceful"}}),
			model.PreStopHTTP, true, false, ""},
		{"an http path that does not parse", handler(corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/%zz"}}),
			model.PreStopHTTP, false, false, "calls GET /%zz, whose effect on the app is unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := model.ParsePreStop(tc.c)
			if p.Kind != tc.kind || p.Known != tc.known || p.Stops != tc.stops || (!p.Known && p.Unknown != tc.unknown) {
				t.Errorf("got kind %v known %v stops %v unknown %q, want %v %v %v %q", p.Kind, p.Known, p.Stops, p.Unknown, tc.kind, tc.known, tc.stops, tc.unknown)
			}
		})
	}
}

// TestUnknownReasons: what an unknown hook says about itself.
func TestUnknownReasons(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"sh", "-c", "$(which sleep) 5"}, "runs a command whose name rollguard cannot resolve"},
		{[]string{"sh", "-c", "sleep $DRAIN"}, `runs "sleep …" with a value rollguard cannot resolve`},
		{[]string{"sh", "-c", "while true; do sleep 1; done"}, "runs a shell loop, whose duration rollguard cannot tell"},
		{[]string{"sh", "-c", "for i in 1 2; do sleep 1; done"}, "runs a shell loop"},
		{[]string{"sh", "-c", "if true; then sleep 1; fi"}, "runs a shell conditional"},
		{[]string{"sh", "-c", "case x in x) sleep 1;; esac"}, "runs a shell conditional"},
		{[]string{"sh", "-c", "f() { sleep 1; }"}, "runs a shell function"},
		{[]string{"sh", "-c", "[[ -f x ]]"}, "runs a shell construct"},
		{[]string{"sh", "-c", `sh -c "sh -c 'sh -c \"sh -c sleep\\ 1\"'"`}, "nests shells too deeply"},
		{[]string{"sh", "/drain.sh"}, `runs the script file "/drain.sh"`},
		{[]string{"bash", "-e"}, "runs bash without a -c script"},
		{[]string{"sh", "-c", "sleep 5; fi"}, "runs a shell script rollguard cannot parse"},
	} {
		p := model.ParsePreStop(execHook(tc.cmd...))
		if p.Known || !strings.HasPrefix(p.Unknown, tc.want) {
			t.Errorf("%q: known %v, unknown %q; want it to start %q", tc.cmd, p.Known, p.Unknown, tc.want)
		}
	}
	// A variable set to nothing expands to no word at all.
	if p := model.ParsePreStop(withEnv(execHook("sh", "-c", "$NOTHING; sleep 2"), "NOTHING", "")); !p.Known || p.Delay != 2*time.Second {
		t.Errorf("an empty expansion: known %v delay %s (%q), want 2s", p.Known, p.Delay, p.Unknown)
	}
}

// TestKubeletExpansion: $(VAR) is expanded in a container's command and
// args (where in-app delay flags live), replaced when defined and kept as
// written when not, $$ being a literal $; never in a preStop hook.
func TestKubeletExpansion(t *testing.T) {
	t.Parallel()
	c := withEnv(&corev1.Container{Args: []string{"--shutdown-grace-period=$(G)"}}, "G", "7")
	if sd := model.ContainerShutdown(c); sd.InApp != 7*time.Second {
		t.Errorf("in-app delay %s from $(G)=7, want 7s", sd.InApp)
	}
	c = withEnv(&corev1.Container{Args: []string{"--shutdown-grace-period=$(B)"}}, "A", "2", "B", "$(A)")
	if sd := model.ContainerShutdown(c); sd.InApp != 2*time.Second {
		t.Errorf("an env var refers to one defined before it: got %s, want 2s", sd.InApp)
	}
	c = withEnv(execHook("/drain", "$(X)"), "X", "1")
	if p := model.ParsePreStop(c); !strings.HasPrefix(p.Unknown, `runs "/drain $(X)"`) {
		t.Errorf("a hook's $(X) was expanded: %q", p.Unknown)
	}
	c = withEnv(execHook("sh", "-c", "sleep $D"), "D", "4", "D", "")
	c.Env[1].ValueFrom = &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}
	if p := model.ParsePreStop(c); p.Known {
		t.Errorf("a later valueFrom definition of D must win (unknown), got %s", p.Delay)
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	const s = time.Second
	for _, tc := range []struct {
		name string
		sd   model.Shutdown
		want string
	}{
		{"nothing", model.Shutdown{}, "no preStop hook"},
		{"only the app's delay", model.Shutdown{InApp: 3 * s, InAppFrom: "flag --x"},
			"no preStop hook; the app keeps serving 3s after SIGTERM (flag --x)"},
		{"an unknown hook", model.Shutdown{Hook: model.PreStop{Kind: model.PreStopExec, Unknown: "runs x"}}, "a preStop hook that runs x"},
		{"a sleep of whole seconds past a minute", model.Shutdown{Hook: model.PreStop{Kind: model.PreStopSleep, Known: true, Delay: 90 * s}},
			"a preStop hook that sleeps 90s"},
		{"a sleep of a fraction", model.Shutdown{Hook: model.PreStop{Kind: model.PreStopExec, Known: true, Delay: 2500 * time.Millisecond}},
			"a preStop hook that sleeps 2.5s"},
		{"a stop after a wait; the app's delay is moot", model.Shutdown{Hook: model.PreStop{Kind: model.PreStopExec, Known: true, Delay: 2 * s, Stops: true, Action: `"nginx -s quit"`},
			InApp: 9 * s, InAppFrom: "annotation a"},
			`a preStop hook that waits 2s, then runs "nginx -s quit"`},
		{"a signal at once, then the app's delay", model.Shutdown{Hook: model.PreStop{Kind: model.PreStopExec, Known: true, Signals: true, Action: `"kill 1"`},
			InApp: 4 * s, InAppFrom: "annotation a"},
			`a preStop hook that runs "kill 1" at once; the app keeps serving 4s after SIGTERM (annotation a)`},
	} {
		if got := tc.sd.Describe(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestInAppFlags(t *testing.T) {
	t.Parallel()
	const s = time.Second
	for _, tc := range []struct {
		name string
		args []string
		want time.Duration
		from string
	}{
		{"a flag with no value", []string{"--shutdown-delay-duration"}, 0, ""},
		{"another flag's value is not read", []string{"--port", "8080"}, 0, ""},
		{"an unreadable value, then a readable flag", []string{"--shutdown-grace-period=soon", "--shutdown-delay-duration=7s"}, 7 * s, "flag --shutdown-delay-duration"},
		{"whole seconds as a separate argument", []string{"--shutdown-grace-period", "12"}, 12 * s, "flag --shutdown-grace-period"},
		{"a negative value is ignored", []string{"--shutdown-delay-duration=-3s"}, 0, ""},
		{"a negative number is ignored", []string{"--shutdown-grace-period=-3"}, 0, ""},
		{"zero is a value", []string{"--shutdown-delay-duration=0s", "--shutdown-grace-period=9"}, 0, "flag --shutdown-delay-duration"},
		{"zero whole seconds in another spelling (no Go duration)", []string{"--shutdown-grace-period=00", "--shutdown-delay-duration=9s"}, 0, "flag --shutdown-grace-period"},
	} {
		sd := model.ContainerShutdown(&corev1.Container{Args: tc.args})
		if sd.InApp != tc.want || sd.InAppFrom != tc.from {
			t.Errorf("%s: in-app %s from %q, want %s from %q", tc.name, sd.InApp, sd.InAppFrom, tc.want, tc.from)
		}
	}
	// The flag may sit in command as well as args, its value in the env.
	c := withEnv(&corev1.Container{Command: []string{"/controller", "--shutdown-grace-period=$(GRACE)"}}, "GRACE", "6")
	if sd := model.ContainerShutdown(c); sd.InApp != 6*s {
		t.Errorf("a flag in command with an env value: in-app %s, want 6s", sd.InApp)
	}
	// The pod template's annotation wins over the workload's, which wins over a flag.
	c = &corev1.Container{Args: []string{"--shutdown-grace-period=10"}}
	sd := model.ContainerShutdown(c, map[string]string{"other": "x"}, map[string]string{model.ShutdownDelayAnnotation: " 2s "})
	if sd.InApp != 2*s || !strings.HasPrefix(sd.InAppFrom, "annotation") {
		t.Errorf("the workload's annotation: in-app %s from %q, want 2s from the annotation", sd.InApp, sd.InAppFrom)
	}
	sd = model.ContainerShutdown(c, map[string]string{model.ShutdownDelayAnnotation: "1s"}, map[string]string{model.ShutdownDelayAnnotation: "2s"})
	if sd.InApp != s {
		t.Errorf("both annotations: in-app %s, want the template's 1s", sd.InApp)
	}
	sd = model.ContainerShutdown(c, map[string]string{model.ShutdownDelayAnnotation: "0s"})
	if sd.InApp != 0 || !strings.HasPrefix(sd.InAppFrom, "annotation") {
		t.Errorf("an annotation of 0s: in-app %s from %q, want 0s from the annotation, over the flag", sd.InApp, sd.InAppFrom)
	}
	sd = model.ContainerShutdown(c, map[string]string{model.ShutdownDelayAnnotation: "-1s"})
	if sd.InApp != 10*s || sd.InAppFrom != "flag --shutdown-grace-period" {
		t.Errorf("a negative annotation: in-app %s from %q, want the flag's 10s", sd.InApp, sd.InAppFrom)
	}
}

// TestImageHasSkipsEmptyCommands: an exec probe with no command proves
// nothing, and does not hide the commands after it.
func TestImageHasSkipsEmptyCommands(t *testing.T) {
	t.Parallel()
	c := &corev1.Container{
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{}}},
		StartupProbe:   &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "sleep 1"}}}},
		Lifecycle:      &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"/bin/busybox", "touch", "/tmp/up"}}}},
	}
	// busybox runs touch as an applet: the image has busybox, not touch.
	for bin, want := range map[string]bool{"sh": true, "sleep": true, "touch": false, "busybox": true} {
		if got := model.ImageHas(c, bin); got != want {
			t.Errorf("ImageHas(%q) = %v, want %v", bin, got, want)
		}
	}
}

// TestShutdownOfWorkload: the workload reads its pod template's and its
// own annotations.
func TestShutdownOfWorkload(t *testing.T) {
	t.Parallel()
	m := build(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, annotations: {rollguard.io/shutdown-delay: 4s}}
spec:
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: i, lifecycle: {preStop: {sleep: {seconds: 1}}}}]}
`, model.Options{})
	w := m.Workloads[0]
	if sd := w.Shutdown(w.Containers[0]); sd.Delay() != 5*time.Second || sd.Describe() != "a preStop hook that sleeps 1s; the app keeps serving 4s after SIGTERM (annotation rollguard.io/shutdown-delay)" {
		t.Errorf("delay %s: %s", sd.Delay(), sd.Describe())
	}
}

// TestEnvValueExpansion: the kubelet expands an env value's $(VAR) and $$
// before the shell sees it, so a hook's script reads the expanded value.
func TestEnvValueExpansion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ value, want string }{
		{"a$$b", `runs "sleep a$b"`},
		{"$$(X)y", `runs "sleep $(X)y"`},
		{"a$(X)b", `runs "sleep a1b"`},
		{"a$", `runs "sleep a$"`},
	} {
		p := model.ParsePreStop(withEnv(execHook("sh", "-c", "sleep $D"), "X", "1", "D", tc.value))
		if !strings.HasPrefix(p.Unknown, tc.want) {
			t.Errorf("D=%q: unknown %q, want it to start %q", tc.value, p.Unknown, tc.want)
		}
	}
}

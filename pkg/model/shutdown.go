package model

import (
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// ShutdownDelayAnnotation declares how long the app itself keeps accepting
// new connections after SIGTERM (a "lame duck" period), on the workload or
// its pod template. It counts toward the Case 1 delay like a preStop sleep.
const ShutdownDelayAnnotation = "rollguard.io/shutdown-delay"

// PreStopKind says what kind of handler a preStop hook has.
type PreStopKind int

// The kinds of preStop hook.
const (
	// PreStopNone: no preStop hook.
	PreStopNone PreStopKind = iota
	// PreStopSleep: the native sleep action (GA in Kubernetes 1.34).
	PreStopSleep
	// PreStopExec: a command run in the container's image.
	PreStopExec
	// PreStopHTTP: an HTTP request to the container.
	PreStopHTTP
)

// PreStop is what a container's preStop hook does to the app's listener,
// read from its handler: how long after the hook starts the app is still
// accepting new connections, as far as that can be told.
type PreStop struct {
	Kind PreStopKind
	// Known is true when Delay could be read. A hook that runs a command
	// of unknown effect (a custom binary, an HTTP call) is not known.
	Known bool
	// Delay is the time from the hook's start until it stops or signals
	// the app, or until the hook ends when it does neither.
	Delay time.Duration
	// Stops is true when the hook itself ends the app's serving after
	// Delay by other means than SIGTERM (nginx -s quit, kill -QUIT 1):
	// an in-app delay on SIGTERM then never comes into play.
	Stops bool
	// Signals is true when the hook sends the app SIGTERM itself after
	// Delay (kill 1, ingress-nginx's /wait-shutdown): the app's own delay
	// on SIGTERM then starts there.
	Signals bool
	// Action is the command that stops or signals the app, for messages.
	Action string
	// Unknown says what made the delay unknown, for messages; AtLeast is
	// then how long the hook surely keeps the app serving (the sleeps
	// before the command of unknown effect).
	Unknown string
	AtLeast time.Duration
	// Needs lists the binaries of the image that an exec hook runs,
	// its first word first ("sh", "sleep").
	Needs []string
	// SleepOnly is true when the hook does nothing but sleep, so that a
	// fix may replace it as a whole.
	SleepOnly bool
	// Shell is true when an exec hook runs a shell script (sh -c ...),
	// in front of which a sleep can be put.
	Shell bool
}

// Shutdown is what happens between a pod's deletion and the moment a
// container stops accepting new connections: its preStop hook, then the
// app's own delay after SIGTERM.
type Shutdown struct {
	Hook PreStop
	// InApp is how long the app keeps serving after SIGTERM, and
	// InAppFrom where that was read (an annotation or a flag).
	InApp     time.Duration
	InAppFrom string
}

// Known reports whether the total delay can be told.
func (s Shutdown) Known() bool { return s.Hook.Kind == PreStopNone || s.Hook.Known }

// Delay is the time from the pod's deletion until the container stops
// accepting new connections; meaningful only when Known.
func (s Shutdown) Delay() time.Duration {
	if s.Hook.Stops {
		return s.Hook.Delay
	}
	return s.Hook.Delay + s.InApp
}

// Describe says in words where the delay comes from: "preStop sleeps 5s",
// "no preStop hook; the app keeps serving 3s after SIGTERM (annotation ...)".
func (s Shutdown) Describe() string {
	var parts []string
	h := s.Hook
	switch {
	case h.Kind == PreStopNone:
		parts = append(parts, "no preStop hook")
	case !h.Known:
		parts = append(parts, "a preStop hook that "+h.Unknown)
	case h.Stops || h.Signals:
		if h.Delay > 0 {
			parts = append(parts, fmt.Sprintf("a preStop hook that waits %s, then runs %s", secs(h.Delay), h.Action))
		} else {
			parts = append(parts, fmt.Sprintf("a preStop hook that runs %s at once", h.Action))
		}
	default:
		parts = append(parts, fmt.Sprintf("a preStop hook that sleeps %s", secs(h.Delay)))
	}
	if s.InApp > 0 && !h.Stops {
		parts = append(parts, fmt.Sprintf("the app keeps serving %s after SIGTERM (%s)", secs(s.InApp), s.InAppFrom))
	}
	return strings.Join(parts, "; ")
}

func secs(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", int64(d/time.Second))
	}
	return d.String()
}

// ContainerShutdown reads a container's shutdown path. meta holds the
// annotations that may declare the app's own delay: the pod template's
// first, then the workload's.
func ContainerShutdown(c *corev1.Container, annotations ...map[string]string) Shutdown {
	s := Shutdown{Hook: ParsePreStop(c)}
	for _, a := range annotations {
		if v, ok := a[ShutdownDelayAnnotation]; ok {
			if d, err := time.ParseDuration(strings.TrimSpace(v)); err == nil && d >= 0 {
				s.InApp, s.InAppFrom = d, "annotation "+ShutdownDelayAnnotation
				return s
			}
		}
	}
	if d, flag, ok := inAppFlag(c); ok {
		s.InApp, s.InAppFrom = d, "flag "+flag
	}
	return s
}

// inAppFlags are command-line flags whose value is how long the app keeps
// serving after SIGTERM: ingress-nginx's controller (whole seconds) and
// kube-apiserver's (a duration).
var inAppFlags = []string{"--shutdown-grace-period", "--shutdown-delay-duration"}

func inAppFlag(c *corev1.Container) (time.Duration, string, bool) {
	args := append(append([]string{}, c.Command...), c.Args...)
	for i, a := range args {
		for _, f := range inAppFlags {
			var v string
			switch {
			case strings.HasPrefix(a, f+"="):
				v = a[len(f)+1:]
			case a == f && i+1 < len(args):
				v = args[i+1]
			default:
				continue
			}
			if d, ok := flagDuration(expandKube(v, envOf(c))); ok {
				return d, f, true
			}
		}
	}
	return 0, "", false
}

// flagDuration reads whole seconds ("30") or a Go duration ("30s").
func flagDuration(v string) (time.Duration, bool) {
	if n, err := strconv.ParseFloat(v, 64); err == nil && n >= 0 {
		return time.Duration(n * float64(time.Second)), true
	}
	d, err := time.ParseDuration(v)
	return d, err == nil && d >= 0
}

// ParsePreStop reads a container's preStop hook.
func ParsePreStop(c *corev1.Container) PreStop {
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
		return PreStop{}
	}
	h := c.Lifecycle.PreStop
	switch {
	case h.Sleep != nil:
		return PreStop{Kind: PreStopSleep, Known: true, Delay: time.Duration(h.Sleep.Seconds) * time.Second, SleepOnly: true}
	case h.Exec != nil && len(h.Exec.Command) > 0:
		// The kubelet runs a hook's command as written: unlike a
		// container's command and args, it does no $(VAR) expansion
		// (pkg/kubelet/lifecycle/handlers.go). A shell in the hook
		// expands $VAR from the env itself, and reads $(VAR) as a
		// command substitution.
		r := &hookReader{env: envOf(c), container: c}
		r.command(h.Exec.Command)
		return r.result()
	case h.HTTPGet != nil:
		ps := PreStop{Kind: PreStopHTTP, Unknown: fmt.Sprintf("calls GET %s, whose effect on the app is unknown", h.HTTPGet.Path)}
		if eff, ok := knownHTTPEffect(h.HTTPGet.Path); ok {
			ps.Known, ps.Action = true, "GET "+h.HTTPGet.Path
			ps.Stops = eff == stops
			ps.Signals = eff == signals
		}
		return ps
	}
	return PreStop{Kind: PreStopExec, Unknown: "has no command"}
}

// envOf is the container's environment as far as literal values go;
// variables from secrets, config maps or fields are absent (unknown).
func envOf(c *corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = expandKube(e.Value, env)
		} else {
			delete(env, e.Name) // the last definition wins, and this one is unknown
		}
	}
	return env
}

// expandKube does the kubelet's $(VAR) expansion of command and args:
// a defined variable is replaced, an undefined reference stays as written,
// and $$ is a literal $.
func expandKube(s string, env map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '(':
			if end := strings.IndexByte(s[i+2:], ')'); end >= 0 {
				name := s[i+2 : i+2+end]
				if v, ok := env[name]; ok {
					b.WriteString(v)
					i += 2 + end
					continue
				}
			}
		}
		b.WriteByte('$')
	}
	return b.String()
}

// effect is what a command does to the app's listener.
type effect int

const (
	harmless effect = iota // no effect on serving (echo, a probe)
	stops                  // ends serving at once (nginx -s quit)
	signals                // sends SIGTERM: the app's own delay applies
	unknownEffect
)

// knownHTTPEffect knows the admin endpoints of widely deployed proxies.
func knownHTTPEffect(p string) (effect, bool) {
	u, err := url.Parse(p)
	if err != nil {
		return unknownEffect, false
	}
	switch u.Path {
	case "/drain_listeners": // Envoy: with ?graceful the listeners keep accepting for --drain-time-s
		if u.Query().Has("graceful") {
			return harmless, true
		}
		return stops, true
	case "/healthcheck/fail": // Envoy: fails health checks, keeps serving
		return harmless, true
	case "/quitquitquit": // Envoy, Istio's pilot-agent: exits
		return stops, true
	}
	return unknownEffect, false
}

// hookReader follows a hook's commands in order until the first one that
// stops or signals the app, adding up the sleeps on the way.
type hookReader struct {
	env       map[string]string
	container *corev1.Container
	ps        PreStop
	done      bool // the app was stopped or signalled, or the script exited
	other     bool // something besides sleep ran
	depth     int
	applet    bool // the command is a busybox applet
}

func (r *hookReader) result() PreStop {
	ps := r.ps
	ps.Kind = PreStopExec
	if ps.Unknown == "" {
		ps.Known = true
	} else {
		ps.AtLeast, ps.Delay = ps.Delay, 0
	}
	ps.SleepOnly = ps.Known && !r.other && !ps.Stops && !ps.Signals
	return ps
}

func (r *hookReader) need(bin string) {
	for _, n := range r.ps.Needs {
		if n == bin {
			return
		}
	}
	r.ps.Needs = append(r.ps.Needs, bin)
}

func (r *hookReader) unknown(format string, args ...any) {
	if r.ps.Unknown == "" {
		r.ps.Unknown = fmt.Sprintf(format, args...)
	}
	r.done = true
}

// command interprets one command line (argv already expanded).
func (r *hookReader) command(argv []string) {
	if r.done || len(argv) == 0 {
		return
	}
	bin := path.Base(argv[0])
	if bin == "busybox" && len(argv) > 1 {
		r.need("busybox") // its applets need no other binary
		argv = argv[1:]
		bin = path.Base(argv[0])
		r.applet = true
	}
	if bin == "exec" || bin == "command" || bin == "nohup" {
		r.command(argv[1:])
		return
	}
	if IsShell(bin) {
		if !r.applet {
			r.need(bin)
		}
		r.applet = false
		r.shell(bin, argv[1:])
		return
	}
	if (!builtin[bin] || r.depth == 0) && !r.applet {
		r.need(bin)
	}
	r.applet = false
	line := strings.Join(argv, " ")
	switch eff, d, ok := r.classify(bin, argv[1:]); {
	case !ok:
		r.unknown("runs %q, whose effect on the app rollguard cannot tell", line)
	case d > 0:
		r.ps.Delay += d
	case eff == stops || eff == signals:
		r.other = true
		r.ps.Stops, r.ps.Signals = eff == stops, eff == signals
		r.ps.Action = fmt.Sprintf("%q", line)
		r.done = true
	case bin == "exit":
		r.done = true
	default:
		r.other = r.other || bin != "sleep"
	}
}

// builtin lists commands that shells run themselves, needing no binary.
var builtin = map[string]bool{"echo": true, "printf": true, "true": true, ":": true, "exit": true,
	"test": true, "[": true, "kill": true, "set": true, "export": true, "false": true, "wait": true}

// quiet lists commands that neither delay nor touch the app.
var quiet = map[string]bool{"echo": true, "printf": true, "true": true, ":": true, "exit": true,
	"logger": true, "date": true, "set": true, "export": true, "sync": true, "touch": true, "rm": true}

// classify says what one command does: a delay, an effect, or ok=false
// when rollguard cannot tell.
func (r *hookReader) classify(bin string, args []string) (eff effect, delay time.Duration, ok bool) {
	has := func(words ...string) bool {
		for _, a := range args {
			for _, w := range words {
				if a == w {
					return true
				}
			}
		}
		return false
	}
	switch {
	case bin == "sleep":
		return sleepArgs(args)
	case quiet[bin]:
		return harmless, 0, true
	case bin == "kill" || bin == "killall" || bin == "pkill":
		if has("-0", "-l", "-L") {
			return harmless, 0, true // a liveness check or a listing
		}
		eff, ok := signalEffect(signalOf(bin, args))
		return eff, 0, ok
	case bin == "nginx" || bin == "openresty":
		if has("-t", "-T", "-v", "-V") || has("reload", "reopen") && has("-s") {
			return harmless, 0, true
		}
		if has("-s") && has("quit", "stop") {
			return stops, 0, true
		}
	case bin == "apachectl" || bin == "apache2ctl" || bin == "httpd":
		if has("graceful-stop", "stop") {
			return stops, 0, true
		}
	case bin == "wait-shutdown":
		// ingress-nginx: sends the controller SIGTERM and waits for it to
		// exit; the controller then waits --shutdown-grace-period.
		return signals, 0, true
	case bin == "curl" || bin == "wget":
		for _, a := range args {
			if strings.Contains(a, "://") {
				if u, err := url.Parse(a); err == nil {
					if eff, known := knownHTTPEffect(u.RequestURI()); known {
						return eff, 0, true
					}
				}
			}
		}
	}
	return unknownEffect, 0, false
}

// signalOf returns the signal a kill-like command sends, without the SIG
// prefix: "" for the default (SIGTERM). Options that take a value, and the
// other options of pkill and killall (-f, -x, -u USER, -w ...), are not
// signals.
func signalOf(bin string, args []string) string {
	// The options that take a value: pkill's, or killall's (pkill -o and
	// killall -g take none).
	valued := map[string]bool{"-u": true, "-U": true, "-g": true, "-G": true, "-P": true, "-t": true}
	if bin == "killall" {
		valued = map[string]bool{"-u": true, "-o": true, "-y": true}
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return ""
		case a == "-s" || a == "--signal" || (bin == "kill" && a == "-n"):
			if i+1 < len(args) {
				return strings.TrimPrefix(strings.ToUpper(args[i+1]), "SIG")
			}
		case strings.HasPrefix(a, "--signal="):
			return strings.TrimPrefix(strings.ToUpper(a[len("--signal="):]), "SIG")
		case valued[a] && bin != "kill":
			i++
		case len(a) > 1 && a[0] == '-':
			sig := strings.TrimPrefix(strings.ToUpper(a[1:]), "SIG")
			if signalNames[sig] || isNumber(sig) {
				return sig
			}
		}
	}
	return ""
}

// signalNames are the signals a hook sends by name.
var signalNames = map[string]bool{"TERM": true, "KILL": true, "INT": true, "QUIT": true, "HUP": true,
	"USR1": true, "USR2": true, "WINCH": true, "STOP": true, "CONT": true}

func isNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil && s != ""
}

// signalEffect says what a signal does to a typical server: TERM starts
// its own shutdown (where an in-app delay applies), KILL, INT and QUIT end
// it, HUP, USR1, USR2 and WINCH reload or reopen logs, anything else is
// unknown.
func signalEffect(sig string) (effect, bool) {
	switch sig {
	case "", "TERM", "15":
		return signals, true
	case "KILL", "9", "INT", "2", "QUIT", "3":
		return stops, true
	case "HUP", "1", "USR1", "10", "USR2", "12", "WINCH", "28", "0":
		return harmless, true
	}
	return unknownEffect, false
}

// sleepArgs reads sleep's operands as GNU and busybox sleep do: each a
// number with an optional s, m, h or d suffix, added up.
func sleepArgs(args []string) (effect, time.Duration, bool) {
	if len(args) == 0 {
		return unknownEffect, 0, false
	}
	var total time.Duration
	for _, a := range args {
		unit := time.Second
		num := a
		if n := len(a); n > 0 {
			switch a[n-1] {
			case 's':
				num = a[:n-1]
			case 'm':
				num, unit = a[:n-1], time.Minute
			case 'h':
				num, unit = a[:n-1], time.Hour
			case 'd':
				num, unit = a[:n-1], 24*time.Hour
			}
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f < 0 || strings.ContainsAny(num, "eExXpPiInN_") {
			return unknownEffect, 0, false // "infinity" and "nan" (which ParseFloat reads), "1_0", an unresolved variable
		}
		total += time.Duration(f * float64(unit))
	}
	return harmless, total, true
}

// shell interprets a shell's arguments: "-c SCRIPT" with any other flags.
func (r *hookReader) shell(bin string, args []string) {
	script, found := "", false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o" || a == "+o" || a == "--rcfile" || a == "--init-file":
			i++ // takes a value
		case strings.HasPrefix(a, "--"):
			// --norc, --noprofile, --login, ...
		case strings.HasPrefix(a, "-") && strings.Contains(a, "c"):
			for j := i + 1; j < len(args); j++ {
				if args[j] == "--" {
					continue
				}
				script, found = args[j], true
				break
			}
			i = len(args)
		case strings.HasPrefix(a, "-") || strings.HasPrefix(a, "+"):
		default:
			r.unknown("runs the script file %q, which rollguard cannot read", a)
			return
		}
	}
	if !found {
		r.unknown("runs %s without a -c script", bin)
		return
	}
	r.ps.Shell = r.depth == 0
	r.script(script)
}

// script walks a shell script's statements in order.
func (r *hookReader) script(src string) {
	if r.depth++; r.depth > 4 {
		r.unknown("nests shells too deeply")
		return
	}
	defer func() { r.depth-- }()
	f, err := syntax.NewParser().Parse(strings.NewReader(src), "")
	if err != nil {
		r.unknown("runs a shell script rollguard cannot parse (%v)", err)
		return
	}
	for _, st := range f.Stmts {
		r.stmt(st)
	}
}

func (r *hookReader) stmt(st *syntax.Stmt) {
	if r.done {
		return
	}
	if st.Background {
		// Runs beside the rest: it delays nothing, but may stop the app.
		before := r.ps.Delay
		r.cmd(st.Cmd)
		if !r.done {
			r.ps.Delay = before
		}
		return
	}
	r.cmd(st.Cmd)
}

func (r *hookReader) cmd(c syntax.Command) {
	switch c := c.(type) {
	case *syntax.CallExpr:
		if len(c.Args) == 0 {
			return // only assignments
		}
		argv := make([]string, 0, len(c.Args))
		cfg := &expand.Config{Env: environ(r.env), NoUnset: true}
		for _, w := range c.Args {
			fields, err := expand.Fields(cfg, w)
			if err != nil {
				argv = append(argv, "\x00") // unresolved: never a number or a known word
				continue
			}
			argv = append(argv, fields...)
		}
		if len(argv) > 0 && argv[0] == "\x00" {
			r.unknown("runs a command whose name rollguard cannot resolve")
			return
		}
		for i, a := range argv {
			if a == "\x00" && i > 0 && !(path.Base(argv[0]) == "kill" || path.Base(argv[0]) == "killall" || path.Base(argv[0]) == "pkill") {
				r.unknown("runs %q with a value rollguard cannot resolve (a variable not set in the container's env, or a command substitution)",
					strings.ReplaceAll(strings.Join(argv, " "), "\x00", "…"))
				return
			}
		}
		r.command(argv)
	case *syntax.BinaryCmd:
		// a && b, a || b, a | b: both sides are taken to run, in order.
		r.stmt(c.X)
		r.stmt(c.Y)
	case *syntax.Block:
		for _, st := range c.Stmts {
			r.stmt(st)
		}
	case *syntax.Subshell:
		for _, st := range c.Stmts {
			r.stmt(st)
		}
	default:
		// Loops, conditionals and functions make the time unknowable.
		r.unknown("runs a shell %s, whose duration rollguard cannot tell", nodeName(c))
	}
}

func nodeName(c syntax.Command) string {
	switch c.(type) {
	case *syntax.WhileClause:
		return "loop"
	case *syntax.ForClause:
		return "loop"
	case *syntax.IfClause, *syntax.CaseClause:
		return "conditional"
	case *syntax.FuncDecl:
		return "function"
	}
	return "construct"
}

func environ(env map[string]string) expand.Environ {
	pairs := make([]string, 0, len(env))
	for k, v := range env {
		pairs = append(pairs, k+"="+v)
	}
	return expand.ListEnviron(pairs...)
}

// ImageHas reports whether the container's image demonstrably holds a
// binary: the container's own command, an exec probe or a postStart hook
// runs it (directly or as a shell script's first word).
func ImageHas(c *corev1.Container, bin string) bool {
	var cmds [][]string
	if len(c.Command) > 0 {
		cmds = append(cmds, c.Command)
	}
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
		if p != nil && p.Exec != nil {
			cmds = append(cmds, p.Exec.Command)
		}
	}
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil && c.Lifecycle.PostStart.Exec != nil {
		cmds = append(cmds, c.Lifecycle.PostStart.Exec.Command)
	}
	for _, argv := range cmds {
		if len(argv) == 0 {
			continue
		}
		r := &hookReader{env: envOf(c), container: c}
		r.command(argv)
		for _, n := range r.ps.Needs {
			if n == bin {
				return true
			}
		}
	}
	return false
}

// Shutdown reads the shutdown path of one of the workload's containers,
// with the in-app delay declared on its pod template or the workload.
func (w *Workload) Shutdown(c *Container) Shutdown {
	// Several rules ask; parsing a hook's shell script once is enough.
	if c.shutdown == nil {
		sd := ContainerShutdown(c.Spec, w.Template.Annotations, w.Meta.Annotations)
		c.shutdown = &sd
	}
	return *c.shutdown
}

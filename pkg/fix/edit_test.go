package fix

import (
	"strings"
	"testing"

	"github.com/rollguard/rollguard/pkg/rules"
)

// TestEdits pins the exact text each kind of edit produces: everything
// outside the edit stays byte for byte.
func TestEdits(t *testing.T) {
	t.Parallel()
	sleep5 := rules.M("sleep", rules.M("seconds", 5))
	for _, tc := range []struct {
		name, src, path string
		value           any
		want            string
	}{
		{
			name: "insert into a block mapping before the next list item, keeping comments",
			src: `kind: Deployment
spec:
  containers:
    - name: web   # the app
      image: web:1
      # a comment that ends the container
    - name: side
      image: side:1
`,
			path:  "spec.containers[0].lifecycle.preStop",
			value: sleep5,
			want: `kind: Deployment
spec:
  containers:
    - name: web   # the app
      image: web:1
      lifecycle:
        preStop:
          sleep:
            seconds: 5
      # a comment that ends the container
    - name: side
      image: side:1
`,
		},
		{
			name:  "insert into a flow mapping",
			src:   "kind: Pod\nspec:\n  containers:\n    - {name: web, image: 'web:1' }\n",
			path:  "spec.containers[0].lifecycle.preStop",
			value: sleep5,
			want:  "kind: Pod\nspec:\n  containers:\n    - {name: web, image: 'web:1', lifecycle: {preStop: {sleep: {seconds: 5}}} }\n",
		},
		{
			name:  "insert into an empty flow mapping",
			src:   "kind: Pod\nspec: {}\n",
			path:  "spec.terminationGracePeriodSeconds",
			value: 10,
			want:  "kind: Pod\nspec: {terminationGracePeriodSeconds: 10}\n",
		},
		{
			name:  "replace a plain scalar, keeping its comment",
			src:   "spec:\n  maxUnavailable: 1       # the only pod goes first\n  maxSurge: 0\n",
			path:  "spec.maxUnavailable",
			value: 0,
			want:  "spec:\n  maxUnavailable: 0       # the only pod goes first\n  maxSurge: 0\n",
		},
		{
			name:  "replace a quoted scalar",
			src:   "spec:\n  canary: {maxSurge: \"25%\", maxUnavailable: \"100%\"}\n",
			path:  "spec.canary.maxUnavailable",
			value: 1,
			want:  "spec:\n  canary: {maxSurge: \"25%\", maxUnavailable: 1}\n",
		},
		{
			name: "replace a block mapping value",
			src: `lifecycle:
  preStop:
    exec:
      command:
        - sh
        - -c
        - sleep 2
  postStart: {exec: {command: [warm]}}
`,
			path:  "lifecycle.preStop",
			value: sleep5,
			want: `lifecycle:
  preStop:
    sleep:
      seconds: 5
  postStart: {exec: {command: [warm]}}
`,
		},
		{
			name:  "replace a flow mapping value",
			src:   "lifecycle:\n  preStop: {exec: {command: [\"sh\", \"-c\", \"sleep 2\"]}}  # old\n",
			path:  "lifecycle.preStop",
			value: sleep5,
			want:  "lifecycle:\n  preStop: {sleep: {seconds: 5}}  # old\n",
		},
		{
			name:  "an empty value gets a block below its key",
			src:   "spec:\n  lifecycle:\n  image: x\n",
			path:  "spec.lifecycle.preStop",
			value: sleep5,
			want:  "spec:\n  lifecycle:\n    preStop:\n      sleep:\n        seconds: 5\n  image: x\n",
		},
		{
			name:  "an explicit null becomes a block",
			src:   "spec:\n  lifecycle: null # none yet\n  image: x\n",
			path:  "spec.lifecycle.preStop",
			value: sleep5,
			want:  "spec:\n  lifecycle: # none yet\n    preStop:\n      sleep:\n        seconds: 5\n  image: x\n",
		},
		{
			name:  "four-space indentation and CRLF line endings are kept",
			src:   "spec:\r\n    containers:\r\n        -   name: web\r\n            image: web:1\r\n",
			path:  "spec.containers[0].readinessProbe",
			value: rules.M("tcpSocket", rules.M("port", "http")),
			want:  "spec:\r\n    containers:\r\n        -   name: web\r\n            image: web:1\r\n            readinessProbe:\r\n                tcpSocket:\r\n                    port: http\r\n",
		},
		{
			name:  "a file without a final newline",
			src:   "spec:\n  replicas: 2",
			path:  "spec.minReadySeconds",
			value: 5,
			want:  "spec:\n  replicas: 2\n  minReadySeconds: 5\n",
		},
		{
			name:  "a list value in a block is written in flow style",
			src:   "lifecycle:\n  preStop:\n    exec:\n      command: [\"sh\", \"-c\", \"nginx -s quit\"]\n",
			path:  "lifecycle.preStop.exec.command",
			value: []any{"sh", "-c", "sleep 5; nginx -s quit"},
			want:  "lifecycle:\n  preStop:\n    exec:\n      command: [\"sh\", \"-c\", \"sleep 5; nginx -s quit\"]\n",
		},
		{
			name:  "a block sequence replaced by one of the same length changes only the items that differ",
			src:   "exec:\n  command:\n  - sh\n  - -c\n  - nginx -s quit\nafter: 1\n",
			path:  "exec.command",
			value: []any{"sh", "-c", "sleep 5; nginx -s quit"},
			want:  "exec:\n  command:\n  - sh\n  - -c\n  - sleep 5; nginx -s quit\nafter: 1\n",
		},
		{
			name:  "unicode before the edit on the same line",
			src:   "metadata: {name: café, labels: {tier: 'é'}}\n",
			path:  "metadata.labels.team",
			value: "shop",
			want:  "metadata: {name: café, labels: {tier: 'é', team: shop}}\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			nl := "\n"
			if strings.Contains(tc.src, "\r\n") {
				nl = "\r\n"
			}
			got, _, _, err := applyRemedy([]byte(tc.src), 1, []rules.Op{{Path: tc.path, Value: tc.value}}, nl)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestEditsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, src, path, want string }{
		{"through an alias", "base: &b {replicas: 1}\nspec: *b\n", "spec.minReadySeconds", "alias"},
		{"into a block scalar", "spec:\n  x: |\n    text\n", "spec.x", "block scalars"},
		{"a missing list item", "spec:\n  containers: []\n", "spec.containers[0].image", "no list item 0"},
		{"a scalar that is not a mapping", "spec: 3\n", "spec.replicas", "not a mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, _, err := applyRemedy([]byte(tc.src), 1, []rules.Op{{Path: tc.path, Value: 2}}, "\n")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestSameExceptOpCatchesCollateralChanges(t *testing.T) {
	t.Parallel()
	before := []byte(`{"spec":{"a":1,"b":2}}`)
	if err := sameExceptOp(before, []byte(`{"spec":{"a":1,"b":2,"c":3}}`), rules.Op{Path: "spec.c", Value: 3}); err != nil {
		t.Errorf("the intended change was refused: %v", err)
	}
	if err := sameExceptOp(before, []byte(`{"spec":{"a":9,"b":2,"c":3}}`), rules.Op{Path: "spec.c", Value: 3}); err == nil {
		t.Error("a change to another field went unnoticed")
	}
}

// TestPlacement pins where a new field goes (see order.go): by the reading
// order of the mapping it goes into, never at the end of a pod spec after a
// long container list.
func TestPlacement(t *testing.T) {
	t.Parallel()
	probe := rules.M("tcpSocket", rules.M("port", "http"))
	for _, tc := range []struct {
		name, src, path string
		value           any
		want            string
	}{
		{
			name: "terminationGracePeriodSeconds goes before the containers, not after them",
			src: `kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: web
          image: web:1
      volumes:
        - name: data
          emptyDir: {}
`,
			path:  "spec.template.spec.terminationGracePeriodSeconds",
			value: 10,
			want: `kind: Deployment
spec:
  template:
    spec:
      terminationGracePeriodSeconds: 10
      containers:
        - name: web
          image: web:1
      volumes:
        - name: data
          emptyDir: {}
`,
		},
		{
			name: "a field that goes first goes above the comment over the first key",
			src: `kind: Deployment
spec:
  template:
    spec:
      # the app and its sidecar
      containers:
        - name: web
      serviceAccountName: web
`,
			path:  "spec.template.spec.terminationGracePeriodSeconds",
			value: 10,
			want: `kind: Deployment
spec:
  template:
    spec:
      terminationGracePeriodSeconds: 10
      # the app and its sidecar
      containers:
        - name: web
      serviceAccountName: web
`,
		},
		{
			name: "terminationGracePeriodSeconds follows restartPolicy, as in the API",
			src: `kind: Pod
spec:
  restartPolicy: Always
  dnsPolicy: ClusterFirst
  containers: []
`,
			path:  "spec.terminationGracePeriodSeconds",
			value: 10,
			want: `kind: Pod
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 10
  dnsPolicy: ClusterFirst
  containers: []
`,
		},
		{
			name: "minReadySeconds follows the strategy, before the pod template",
			src: `kind: Deployment
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  strategy:
    rollingUpdate:
      maxSurge: 1
  # the pod
  template:
    spec: {}
`,
			path:  "spec.minReadySeconds",
			value: 5,
			want: `kind: Deployment
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  strategy:
    rollingUpdate:
      maxSurge: 1
  minReadySeconds: 5
  # the pod
  template:
    spec: {}
`,
		},
		{
			name:  "minReadySeconds follows replicas when there is no strategy",
			src:   "kind: StatefulSet\nspec:\n  replicas: 3\n  selector: {}\n  template: {}\n  volumeClaimTemplates: []\n",
			path:  "spec.minReadySeconds",
			value: 5,
			want:  "kind: StatefulSet\nspec:\n  replicas: 3\n  minReadySeconds: 5\n  selector: {}\n  template: {}\n  volumeClaimTemplates: []\n",
		},
		{
			name:  "minReadySeconds goes first in a DaemonSet spec of only a selector and a template",
			src:   "kind: DaemonSet\nspec:\n  selector: {}\n  template: {}\n",
			path:  "spec.minReadySeconds",
			value: 5,
			want:  "kind: DaemonSet\nspec:\n  minReadySeconds: 5\n  selector: {}\n  template: {}\n",
		},
		{
			name: "readinessProbe follows livenessProbe, wherever resources are",
			src: `kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: web
          ports: [{name: http, containerPort: 80}]
          livenessProbe:
            httpGet: {path: /, port: http}

          # sized in load tests
          resources: {}
`,
			path:  "spec.template.spec.containers[0].readinessProbe",
			value: probe,
			want: `kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: web
          ports: [{name: http, containerPort: 80}]
          livenessProbe:
            httpGet: {path: /, port: http}
          readinessProbe:
            tcpSocket:
              port: http

          # sized in load tests
          resources: {}
`,
		},
		{
			name: "without a livenessProbe, readinessProbe follows ports, env and resources, before lifecycle",
			src: `kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: web
          env: []
          resources: {}
          lifecycle: {}
          securityContext: {}
`,
			path:  "spec.template.spec.containers[0].readinessProbe",
			value: probe,
			want: `kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: web
          env: []
          resources: {}
          readinessProbe:
            tcpSocket:
              port: http
          lifecycle: {}
          securityContext: {}
`,
		},
		{
			name: "lifecycle follows the last probe in the file",
			src: `kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: web
          readinessProbe: {}
          livenessProbe:
            exec: {command: [check]}
            # periodSeconds: 30
          envFrom: []
`,
			path:  "spec.template.spec.containers[0].lifecycle.preStop",
			value: rules.M("sleep", rules.M("seconds", 5)),
			want: `kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: web
          readinessProbe: {}
          livenessProbe:
            exec: {command: [check]}
            # periodSeconds: 30
          lifecycle:
            preStop:
              sleep:
                seconds: 5
          envFrom: []
`,
		},
		{
			name:  "preStop follows postStart",
			src:   "kind: Pod\nspec:\n  containers:\n  - name: web\n    lifecycle:\n      postStart: {exec: {command: [warm]}}\n      stopSignal: SIGQUIT\n",
			path:  "spec.containers[0].lifecycle.preStop",
			value: rules.M("sleep", rules.M("seconds", 5)),
			want:  "kind: Pod\nspec:\n  containers:\n  - name: web\n    lifecycle:\n      postStart: {exec: {command: [warm]}}\n      preStop:\n        sleep:\n          seconds: 5\n      stopSignal: SIGQUIT\n",
		},
		{
			name:  "in a flow mapping, the same order",
			src:   "kind: Pod\nspec:\n  containers:\n    - {name: web, ports: [{containerPort: 80}], lifecycle: {}, tty: true}\n",
			path:  "spec.containers[0].readinessProbe",
			value: probe,
			want:  "kind: Pod\nspec:\n  containers:\n    - {name: web, ports: [{containerPort: 80}], readinessProbe: {tcpSocket: {port: http}}, lifecycle: {}, tty: true}\n",
		},
		{
			name:  "first in a flow mapping",
			src:   "kind: Pod\nspec: {containers: [{name: web}]}\n",
			path:  "spec.terminationGracePeriodSeconds",
			value: 10,
			want:  "kind: Pod\nspec: {terminationGracePeriodSeconds: 10, containers: [{name: web}]}\n",
		},
		{
			name:  "a first key that shares its line with a list dash cannot have text put before it: the end",
			src:   "kind: Pod\nspec:\n  containers:\n  - securityContext: {}\n    tty: true\n",
			path:  "spec.containers[0].readinessProbe",
			value: probe,
			want:  "kind: Pod\nspec:\n  containers:\n  - securityContext: {}\n    tty: true\n    readinessProbe:\n      tcpSocket:\n        port: http\n",
		},
		{
			name:  "a mapping fix has no order for gets the new key at its end",
			src:   "kind: Deployment\nmetadata:\n  labels:\n    b: x\n    a: y\n",
			path:  "metadata.labels.c",
			value: "z",
			want:  "kind: Deployment\nmetadata:\n  labels:\n    b: x\n    a: y\n    c: z\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, _, _, err := applyRemedy([]byte(tc.src), 1, []rules.Op{{Path: tc.path, Value: tc.value}}, "\n")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// TestQuotingKept pins that a replaced string, a list item or a whole list
// keeps the original's style: flow or block, and each item's quotes.
func TestQuotingKept(t *testing.T) {
	t.Parallel()
	const prefix = "lifecycle:\n  preStop:\n    exec:\n      command:"
	for _, tc := range []struct {
		name, src, path string
		value           any
		want            string
	}{
		{
			name:  "flow list, mixed quoting and spacing: only the script changes, single-quoted",
			src:   prefix + " [ /bin/sh, '-c', 'nginx -s quit' ]  # graceful\n",
			path:  "lifecycle.preStop.exec.command[2]",
			value: "sleep 5; nginx -s quit",
			want:  prefix + " [ /bin/sh, '-c', 'sleep 5; nginx -s quit' ]  # graceful\n",
		},
		{
			name:  "flow list, double quotes",
			src:   prefix + ` ["/bin/sh", "-c", "nginx -s quit"]` + "\n",
			path:  "lifecycle.preStop.exec.command[2]",
			value: "sleep 5; nginx -s quit",
			want:  prefix + ` ["/bin/sh", "-c", "sleep 5; nginx -s quit"]` + "\n",
		},
		{
			name:  "flow list, plain items stay plain",
			src:   prefix + " [sh, -c, nginx -s quit]\n",
			path:  "lifecycle.preStop.exec.command[2]",
			value: "sleep 5; nginx -s quit",
			want:  prefix + " [sh, -c, sleep 5; nginx -s quit]\n",
		},
		{
			name:  "flow list, a plain item whose new text has a comma is quoted",
			src:   prefix + " [sh, -c, nginx -s quit]\n",
			path:  "lifecycle.preStop.exec.command[2]",
			value: "sleep 5, then quit",
			want:  prefix + ` [sh, -c, "sleep 5, then quit"]` + "\n",
		},
		{
			name:  "block list, plain items and a comment",
			src:   prefix + "\n        - sh\n        - -c\n        - nginx -s quit   # graceful\n",
			path:  "lifecycle.preStop.exec.command[2]",
			value: "sleep 5; nginx -s quit",
			want:  prefix + "\n        - sh\n        - -c\n        - sleep 5; nginx -s quit   # graceful\n",
		},
		{
			name:  "block list, double quotes",
			src:   prefix + "\n        - \"sh\"\n        - \"-c\"\n        - \"nginx -s quit\"\n",
			path:  "lifecycle.preStop.exec.command[2]",
			value: "sleep 5; nginx -s quit",
			want:  prefix + "\n        - \"sh\"\n        - \"-c\"\n        - \"sleep 5; nginx -s quit\"\n",
		},
		{
			name:  "block list, single quotes with a quote inside",
			src:   prefix + "\n        - 'sh'\n        - '-c'\n        - 'echo ''bye''; nginx -s quit'\n",
			path:  "lifecycle.preStop.exec.command[2]",
			value: "sleep 5; echo 'bye'; nginx -s quit",
			want:  prefix + "\n        - 'sh'\n        - '-c'\n        - 'sleep 5; echo ''bye''; nginx -s quit'\n",
		},
		{
			name:  "block list, a plain item whose new text has a comment marker is quoted",
			src:   prefix + "\n        - sh\n        - -c\n        - nginx -s quit\n",
			path:  "lifecycle.preStop.exec.command[2]",
			value: "sleep 5; nginx -s quit #now",
			want:  prefix + "\n        - sh\n        - -c\n        - \"sleep 5; nginx -s quit #now\"\n",
		},
		{
			name:  "a plain item that would read as a number is quoted",
			src:   "args:\n  - --port\n  - http\n",
			path:  "args[1]",
			value: "8080",
			want:  "args:\n  - --port\n  - \"8080\"\n",
		},
		{
			name:  "a longer block list: each item styled like the item at its place, or the last",
			src:   "args:\n  - --port=80\n  - '--mode=fast'\nnext: 1\n",
			path:  "args",
			value: []any{"--port=80", "--mode=fast", "--verbose"},
			want:  "args:\n  - --port=80\n  - '--mode=fast'\n  - '--verbose'\nnext: 1\n",
		},
		{
			name:  "a longer flow list stays flow",
			src:   "args: [--port=80]\n",
			path:  "args",
			value: []any{"--port=80", "--verbose"},
			want:  "args: [--port=80, --verbose]\n",
		},
		{
			name:  "a single-quoted mapping value stays single-quoted",
			src:   "image: 'web:1'   # pinned\n",
			path:  "image",
			value: "web:2",
			want:  "image: 'web:2'   # pinned\n",
		},
		{
			name:  "a plain mapping value that cannot stay plain is double-quoted",
			src:   "note: plain\n",
			path:  "note",
			value: "key: value",
			want:  "note: \"key: value\"\n",
		},
		{
			name:  "a number replacing a quoted string is written as a number",
			src:   "maxUnavailable: \"100%\"\n",
			path:  "maxUnavailable",
			value: 1,
			want:  "maxUnavailable: 1\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, _, _, err := applyRemedy([]byte(tc.src), 1, []rules.Op{{Path: tc.path, Value: tc.value}}, "\n")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// TestNoOpIsNotAnEdit: an op whose field already holds its value (a second
// rule asking for what the first one set) leaves the text and reports no
// edit.
func TestNoOpIsNotAnEdit(t *testing.T) {
	t.Parallel()
	src := "spec:\n  minReadySeconds: 5\n"
	got, _, edited, err := applyRemedy([]byte(src), 1, []rules.Op{
		{Path: "spec.minReadySeconds", Value: 5}, {Path: "spec.replicas", Value: 2}}, "\n")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != src+"  replicas: 2\n" || edited[0] || !edited[1] {
		t.Errorf("edited %v, text:\n%s", edited, got)
	}
}

func TestWritesSleepHandler(t *testing.T) {
	t.Parallel()
	sleep := rules.M("sleep", rules.M("seconds", 5))
	for _, tc := range []struct {
		op   rules.Op
		want bool
	}{
		{rules.Op{Path: "spec.containers[0].lifecycle.preStop", Value: sleep}, true},
		{rules.Op{Path: "spec.containers[0].lifecycle", Value: rules.M("preStop", sleep)}, true},
		{rules.Op{Path: "spec.containers[0].lifecycle.preStop.sleep", Value: rules.M("seconds", 5)}, true},
		{rules.Op{Path: "spec.containers[0].lifecycle.preStop.sleep.seconds", Value: 8}, false},
		{rules.Op{Path: "spec.containers[0].lifecycle.preStop", Value: rules.M("exec", rules.M("command", []any{"sleep", "5"}))}, false},
		{rules.Op{Path: "spec.minReadySeconds", Value: 5}, false},
	} {
		if got := writesSleepHandler(tc.op); got != tc.want {
			t.Errorf("%s = %v: got %v, want %v", tc.op.Path, flowText(tc.op.Value), got, tc.want)
		}
	}
}

//go:build integration

// Package integration holds rollguard's integration tier: tests against a
// real kube-apiserver backed by a real etcd, both started by TestMain.
// hack/test.sh builds kube-apiserver from the k8s.io/kubernetes module
// (hack/kube.sh) and installs etcd from Debian (hack/deps.sh), then runs
//
//	KUBE_BIN=$(hack/kube.sh) go test -tags integration ./test/integration/
package integration

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// server is the running control plane.
var server struct {
	url  string
	dir  string
	logs []string
}

// Tokens of the users the tests act as.
const (
	adminToken  = "admin-token"  // system:masters
	readerToken = "reader-token" // no rights until a test binds the audit ClusterRole
	nobodyToken = "nobody-token" // no rights ever
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// dumpLogs prints the daemons' logs, for a failed start or a failed run;
// it runs before the temporary folder is removed.
func dumpLogs() {
	for _, l := range server.logs {
		if data, err := os.ReadFile(l); err == nil {
			fmt.Fprintf(os.Stderr, "--- %s (last 3000 bytes)\n%s\n", l, tail(data, 3000))
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func run(m *testing.M) (int, error) {
	bin := os.Getenv("KUBE_BIN")
	if bin == "" {
		bin = "../../.cache/kube/v1.37.2/bin"
	}
	apiserver, err := filepath.Abs(filepath.Join(bin, "kube-apiserver"))
	if err != nil {
		return 0, err
	}
	if _, err := os.Stat(apiserver); err != nil {
		return 0, fmt.Errorf("%s: %w (run hack/kube.sh, or set KUBE_BIN)", apiserver, err)
	}
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		return 0, fmt.Errorf("etcd is not installed (run hack/deps.sh)")
	}
	dir, err := os.MkdirTemp("", "rollguard-integration-")
	if err != nil {
		return 0, err
	}
	server.dir = dir
	defer os.RemoveAll(dir)

	ports, err := freePorts(3)
	if err != nil {
		return 0, err
	}
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	etcdCmd, err := start(dir, "etcd", etcd, "--name", "rg", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL, "--initial-cluster", "rg="+peerURL)
	if err != nil {
		return 0, err
	}
	defer stop(etcdCmd)

	if err := writeKeys(dir); err != nil {
		return 0, err
	}
	tokens := adminToken + ",admin,admin,system:masters\n" + readerToken + ",reader,reader,\n" + nobodyToken + ",nobody,nobody,\n"
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(tokens), 0o600); err != nil {
		return 0, err
	}
	api, err := start(dir, "kube-apiserver", apiserver,
		"--etcd-servers", clientURL, "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", fmt.Sprint(ports[2]), "--cert-dir", filepath.Join(dir, "pki"),
		"--token-auth-file", filepath.Join(dir, "tokens.csv"), "--authorization-mode", "RBAC",
		"--service-cluster-ip-range", "198.19.0.0/16",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
		// No controller-manager runs, so namespaces get no default
		// ServiceAccount; the tests create no pods that would need it.
		"--disable-admission-plugins", "ServiceAccount",
		// The kubernetes Service's endpoints may not be a loopback address.
		"--endpoint-reconciler-type", "none")
	if err != nil {
		return 0, err
	}
	defer stop(api)
	server.url = fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	if err := waitReady(server.url, 90*time.Second, api); err != nil {
		dumpLogs()
		return 0, err
	}
	code := m.Run()
	if code != 0 {
		dumpLogs()
	}
	return code, nil
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// start runs a daemon with its output in a log file; it dies with the test
// process.
func start(dir, name, path string, args ...string) (*exec.Cmd, error) {
	logPath := filepath.Join(dir, name+".log")
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	server.logs = append(server.logs, logPath)
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	done := make(chan struct{})
	exited[cmd] = done
	go func() { _ = cmd.Wait(); close(done) }()
	return cmd, nil
}

// exited holds, per daemon, a channel closed when it has exited.
var exited = map[*exec.Cmd]chan struct{}{}

func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited[cmd]:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited[cmd]
	}
}

func writeKeys(dir string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

func waitReady(url string, timeout time.Duration, api *exec.Cmd) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited[api]:
			return fmt.Errorf("kube-apiserver exited")
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("kube-apiserver not ready at %s after %s", url, timeout)
}

// kubeconfig writes a kubeconfig for a token, with a context named after it.
func kubeconfig(t *testing.T, serverURL, token, namespace string) string {
	t.Helper()
	ca := ""
	if data, err := os.ReadFile(filepath.Join(server.dir, "pki", "apiserver.crt")); err == nil {
		ca = "    certificate-authority-data: " + b64(data) + "\n"
	}
	cfg := "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: " + serverURL + "\n" + ca +
		"users:\n- name: u\n  user:\n    token: " + token + "\n" +
		"contexts:\n- name: it\n  context:\n    cluster: test\n    user: u\n    namespace: " + namespace + "\n" +
		"current-context: it\n"
	if ca == "" {
		cfg = strings.Replace(cfg, "    server: "+serverURL+"\n", "    server: "+serverURL+"\n    insecure-skip-tls-verify: true\n", 1)
	}
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

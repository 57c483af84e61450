package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/rollguard/rollguard/pkg/netns"
)

// network is where a run's pods listen and its clients connect from.
type network interface {
	// podAddr is pod i's address (host:port), fixed when the pod is
	// created.
	podAddr(i int) string
	// sandbox gives pod i its address, as the pod's sandbox does before
	// any container runs, and says if podAddr could not find it one.
	sandbox(i int, addr string) error
	// listen opens pod i's listener.
	listen(i int, addr string) (net.Listener, error)
	// gone is called when pod i has exited: on a real network its address
	// disappears with it.
	gone(i int)
	// dial connects from a client node.
	dial(ctx context.Context, addr string) (net.Conn, error)
	close()
}

// netnsNet gives every pod its own network namespace and an address in
// 198.18.0.0/15, joined with the clients' namespace by a bridge in a
// switch namespace, all created for this run and removed after it. When a
// pod exits its namespace is deleted, so its address vanishes and a client
// still sending to it gets a timeout or "no route to host", as on a real
// cluster. The host's own namespace is never touched.
type netnsNet struct {
	prefix string
	port   int
	mu     sync.Mutex
	made   []string // namespaces to delete, in creation order
}

// NetNSAvailable says why --netns cannot run here, or nil.
func NetNSAvailable() error {
	if !netns.Supported {
		return fmt.Errorf("--netns: %w", netns.ErrUnsupported)
	}
	if os.Geteuid() != 0 {
		return errors.New("--netns needs root (it creates network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("--netns needs the ip command (Debian package iproute2)")
	}
	return nil
}

var netnsRun sync.Mutex
var netnsSeq int

func newNetNS() (*netnsNet, error) {
	if err := NetNSAvailable(); err != nil {
		return nil, err
	}
	// Every pod has a namespace of its own, so one port serves them all.
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	netnsRun.Lock()
	netnsSeq++
	n := &netnsNet{prefix: fmt.Sprintf("rglab-%d-%d", os.Getpid(), netnsSeq), port: port}
	netnsRun.Unlock()
	sw, cl := n.prefix+"-sw", n.prefix+"-c"
	steps := [][]string{
		{"netns", "add", sw},
		{"-n", sw, "link", "add", "br0", "type", "bridge"},
		{"-n", sw, "link", "set", "br0", "up"},
		{"netns", "add", cl},
		{"-n", sw, "link", "add", "vc", "type", "veth", "peer", "name", "eth0", "netns", cl},
		{"-n", sw, "link", "set", "vc", "master", "br0", "up"},
		{"-n", cl, "addr", "add", "198.18.0.1/15", "dev", "eth0"},
		{"-n", cl, "link", "set", "eth0", "up"},
		{"-n", cl, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if s[0] == "netns" && s[1] == "add" {
			n.made = append(n.made, s[2])
		}
		if err := ip(s...); err != nil {
			n.close()
			return nil, err
		}
	}
	return n, nil
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (n *netnsNet) podNS(i int) string { return fmt.Sprintf("%s-p%d", n.prefix, i) }

func (n *netnsNet) podAddr(i int) string {
	return fmt.Sprintf("198.18.%d.%d:%d", 1+i/250, i%250+2, n.port)
}

func (n *netnsNet) sandbox(i int, addr string) error {
	ns := n.podNS(i)
	host, _, _ := net.SplitHostPort(addr)
	veth := fmt.Sprintf("vp%d", i)
	n.mu.Lock()
	n.made = append(n.made, ns)
	n.mu.Unlock()
	for _, s := range [][]string{
		{"netns", "add", ns},
		{"-n", n.prefix + "-sw", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"-n", n.prefix + "-sw", "link", "set", veth, "master", "br0", "up"},
		{"-n", ns, "addr", "add", host + "/15", "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
	} {
		if err := ip(s...); err != nil {
			return err
		}
	}
	return nil
}

func (n *netnsNet) listen(i int, addr string) (net.Listener, error) {
	return netns.Listen(n.podNS(i), "tcp", addr)
}

func (n *netnsNet) gone(i int) {
	_ = ip("netns", "del", n.podNS(i)) // the veth pair and the address go with it
}

func (n *netnsNet) dial(ctx context.Context, addr string) (net.Conn, error) {
	return netns.Dialer(n.prefix+"-c")(ctx, "tcp", addr)
}

func (n *netnsNet) close() {
	n.mu.Lock()
	made := append([]string(nil), n.made...)
	n.made = nil
	n.mu.Unlock()
	for i := len(made) - 1; i >= 0; i-- {
		_ = exec.Command("ip", "netns", "del", made[i]).Run() // already gone is fine
	}
}

package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rollguard/rollguard/pkg/netns"
)

// fakeListener is a bound port offered by a fake system.
type fakeListener struct {
	net.Listener
	port   int
	closed bool
}

func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: f.port} }
func (f *fakeListener) Close() error   { f.closed = true; return nil }

// TestReservePortPassesOverHeldPorts: a system that offers a port a live
// run holds again (as it does once the pod there has closed) gets that
// offer kept bound while it is asked for another, and the pod gets the
// other one.
func TestReservePortPassesOverHeldPorts(t *testing.T) {
	const held, fresh = 1, 2 // never real ports: the real registry cannot hold them
	reserved.Lock()
	reserved.ports[held] = true
	reserved.Unlock()
	t.Cleanup(func() {
		reserved.Lock()
		delete(reserved.ports, held)
		delete(reserved.ports, fresh)
		reserved.Unlock()
	})
	var offered []*fakeListener
	bind := func() (net.Listener, error) {
		port := held
		if len(offered) > 0 {
			port = fresh
			if offered[0].closed {
				t.Error("the port passed over was released before another was found: the system could offer it again")
			}
		}
		f := &fakeListener{port: port}
		offered = append(offered, f)
		return f, nil
	}
	port, err := reservePort(bind)
	if err != nil {
		t.Fatal(err)
	}
	if port != fresh || len(offered) != 2 || !offered[0].closed || !offered[1].closed {
		t.Errorf("got port %d after %d offers; want %d after 2, every offer closed", port, len(offered), fresh)
	}
	reserved.Lock()
	defer reserved.Unlock()
	if !reserved.ports[fresh] {
		t.Errorf("port %d was not recorded as held", fresh)
	}
}

// TestReservePortGivesUp: a system that only ever offers held ports ends
// the run with an error instead of looping.
func TestReservePortGivesUp(t *testing.T) {
	const held = 3
	reserved.Lock()
	reserved.ports[held] = true
	reserved.Unlock()
	t.Cleanup(func() { reserved.Lock(); delete(reserved.ports, held); reserved.Unlock() })
	_, err := reservePort(func() (net.Listener, error) { return &fakeListener{port: held}, nil })
	if !errors.Is(err, errSetup) {
		t.Errorf("got %v, want a setup error", err)
	}
}

func refused(t *testing.T, addr, when string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		t.Errorf("%s: %s accepted a connection; want it refused", when, addr)
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("%s: %s: %v; want connection refused", when, addr, err)
	}
}

// TestPortPerPod: on one address, every pod has a port of its own that
// refuses connections before the pod listens and after it has closed, and
// no other pod of the run gets it; the run's end hands the ports back.
func TestPortPerPod(t *testing.T) {
	l, err := newLoopback(PortPerPod, 0)
	if err != nil {
		t.Fatal(err)
	}
	first := l.podAddr(1)
	if host, _, _ := net.SplitHostPort(first); host != "127.0.0.1" {
		t.Fatalf("pod address %s; want one on 127.0.0.1", first)
	}
	if err := l.sandbox(1, first); err != nil {
		t.Fatal(err)
	}
	if again := l.podAddr(1); again != first {
		t.Errorf("pod 1 at %s, then at %s", first, again)
	}
	refused(t, first, "before listening")
	ln, err := l.listen(1, first)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for c, err := ln.Accept(); err == nil; c, err = ln.Accept() {
			c.Close()
		}
	}()
	c, err := l.dial(context.Background(), first)
	if err != nil {
		t.Fatalf("listening pod: %v", err)
	}
	c.Close()
	ln.Close()
	l.gone(1)
	refused(t, first, "after closing")

	seen := map[string]int{first: 1}
	for i := 2; i <= 60; i++ {
		a := l.podAddr(i)
		if j, dup := seen[a]; dup {
			t.Fatalf("pods %d and %d both at %s", j, i, a)
		}
		seen[a] = i
	}
	l.close()
	reserved.Lock()
	defer reserved.Unlock()
	for a := range seen {
		_, port, _ := net.SplitHostPort(a)
		if p, _ := strconv.Atoi(port); reserved.ports[p] {
			t.Errorf("port %d still held after the run ended", p)
		}
	}
}

// TestAddressingDefault: Linux binds all of 127.0.0.0/8, so pods get an
// address each there.
func TestAddressingDefault(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skipf("the default on %s depends on its loopback configuration", runtime.GOOS)
	}
	if got := DefaultAddressing(); got != AddressPerPod {
		t.Errorf("DefaultAddressing() = %q on Linux; want %q", got, AddressPerPod)
	}
	l, err := newLoopback(AddressingAuto, 5)
	if err != nil {
		t.Fatal(err)
	}
	if a := l.podAddr(1); a[:len("127.87.5.")] != "127.87.5." {
		t.Errorf("auto addressing put pod 1 at %s", a)
	}
	if _, err := newLoopback("per-pod", 0); err == nil {
		t.Error("an unknown addressing mode was accepted")
	}
}

// TestAddressingOnOneAddress: in a network namespace whose loopback has
// only 127.0.0.1, as macOS's lo0 has, binding 127.87.0.2 fails with
// EADDRNOTAVAIL, the probe picks a port per pod, and ports can be had.
func TestAddressingOnOneAddress(t *testing.T) {
	if err := NetNSAvailable(); err != nil {
		t.Skip(err)
	}
	// Not rglab-: TestNetNS looks for leftovers of that prefix.
	ns := fmt.Sprintf("rgaddr-%d", os.Getpid())
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	for _, s := range [][]string{
		{"netns", "add", ns},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "addr", "del", "127.0.0.1/8", "dev", "lo"},
		{"-n", ns, "addr", "add", "127.0.0.1/32", "dev", "lo"},
	} {
		if err := ip(s...); err != nil {
			t.Fatal(err)
		}
	}
	listen := func(network, addr string) (net.Listener, error) { return netns.Listen(ns, network, addr) }
	if l, err := listen("tcp", probeAddr+":0"); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		if err == nil {
			l.Close()
		}
		t.Fatalf("binding %s in a namespace with only 127.0.0.1: %v; want EADDRNOTAVAIL, as on macOS", probeAddr, err)
	}
	if got := probeAddressing(listen); got != PortPerPod {
		t.Errorf("probe picked %q with only 127.0.0.1; want %q", got, PortPerPod)
	}
	port, err := reservePort(func() (net.Listener, error) { return listen("tcp", "127.0.0.1:0") })
	if err != nil {
		t.Fatal(err)
	}
	reserved.Lock()
	delete(reserved.ports, port)
	reserved.Unlock()
}

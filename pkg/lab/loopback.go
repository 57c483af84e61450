package lab

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
)

// Addressing is how the pods of a loopback run get endpoints of their own,
// so that a request to a pod that does not listen reaches nothing else and
// is refused by the kernel.
type Addressing string

const (
	// AddressingAuto, the zero value, is AddressPerPod where this system
	// binds loopback addresses other than 127.0.0.1 (Linux, Windows) and
	// PortPerPod where it does not (macOS). See DefaultAddressing.
	AddressingAuto Addressing = ""
	// AddressPerPod gives every pod its own address, 127.87.x.y, all on
	// one port. The port stays bound by some pod of the run for as long as
	// any of them listens, so nothing outside can take it in between.
	AddressPerPod Addressing = "address-per-pod"
	// PortPerPod puts every pod on 127.0.0.1 with a port of its own, taken
	// from the system when the pod is created and given to no other pod
	// in this process until the run has ended. See reservePort for what
	// it cannot rule out.
	PortPerPod Addressing = "port-per-pod"
)

// probeAddr is the first pod address AddressPerPod uses. Linux routes all
// of 127.0.0.0/8 to the loopback interface and binds any address in it;
// macOS configures only 127.0.0.1 on lo0, and binding 127.0.0.2 and up
// fails with EADDRNOTAVAIL unless an alias was added by hand.
const probeAddr = "127.87.0.2"

var defaultAddressing = sync.OnceValue(func() Addressing { return probeAddressing(net.Listen) })

// DefaultAddressing is what AddressingAuto means on this system. It binds
// a port on 127.87.0.2 once per process, and picks PortPerPod if that
// fails for any reason: pods on 127.0.0.1 need nothing the system may lack.
func DefaultAddressing() Addressing { return defaultAddressing() }

func probeAddressing(listen func(network, addr string) (net.Listener, error)) Addressing {
	l, err := listen("tcp", net.JoinHostPort(probeAddr, "0"))
	if err != nil {
		return PortPerPod
	}
	l.Close()
	return AddressPerPod
}

// loopback puts every pod on the loopback interface. A pod that does not
// listen refuses connections, but its address never goes away.
type loopback struct {
	mode Addressing // AddressPerPod or PortPerPod, never AddressingAuto

	// AddressPerPod: pod i listens on 127.87.block.x:port.
	block byte
	port  int

	// PortPerPod: each pod's port, or why it has none.
	mu    sync.Mutex
	ports map[int]int
	errs  map[int]error
}

func newLoopback(mode Addressing, block byte) (*loopback, error) {
	switch mode {
	case AddressingAuto:
		mode = DefaultAddressing()
	case AddressPerPod, PortPerPod:
	default:
		return nil, fmt.Errorf("addressing %q: want %q, %q or empty for the system's default", mode, AddressPerPod, PortPerPod)
	}
	l := &loopback{mode: mode, block: block, ports: map[int]int{}, errs: map[int]error{}}
	if mode == AddressPerPod {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		l.port = port
	}
	return l, nil
}

// freePort finds a port free on the loopback; with AddressPerPod, every pod
// of a run listens on it at its own address.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errSetup, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (l *loopback) podAddr(i int) string {
	if l.mode == AddressPerPod {
		return fmt.Sprintf("127.87.%d.%d:%d", l.block+byte(i/250), i%250+2, l.port)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	port, ok := l.ports[i]
	if !ok && l.errs[i] == nil {
		var err error
		if port, err = reservePort(listenLoopback); err != nil {
			// The interface has no room for an error here; sandbox, which
			// the cluster calls next, reports it and fails the run.
			l.errs[i] = err
		} else {
			l.ports[i] = port
		}
	}
	// Port 0 for a pod without one only keeps the address well formed: the
	// run fails, and listen does not bind it (which would take a random
	// port).
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// sandbox reports a pod that could not be given a port.
func (l *loopback) sandbox(i int, _ string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errs[i]
}

func (l *loopback) listen(i int, addr string) (net.Listener, error) {
	if err := l.sandbox(i, addr); err != nil {
		return nil, err
	}
	return net.Listen("tcp", addr)
}

// gone keeps an exited pod's port reserved: clients whose view of the
// endpoints is stale still dial it, and must keep being refused.
func (l *loopback) gone(int) {}

func (l *loopback) dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// close hands the run's ports back, as no client of the run dials them any
// more, and forgets them, so that a second close cannot hand back ports
// another run has been given since.
func (l *loopback) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	reserved.Lock()
	defer reserved.Unlock()
	for i, p := range l.ports {
		delete(reserved.ports, p)
		delete(l.ports, i)
	}
}

// reserved is every port that a pod of a live PortPerPod run in this
// process has been given. The system offers a port again as soon as
// nothing is bound to it, which for a pod is true before it listens and
// after it has closed: without this record, two runs going on side by side,
// or two pods of one run, could be given the same port, and a request
// meant for a stopped pod would reach a live one.
var reserved = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

func listenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// reservePort takes a port from the system by binding 127.0.0.1:0 with
// bind, and records it in reserved. A port already recorded is passed
// over, and its socket kept bound until a new port is found, so that the
// system cannot offer it again in the meantime.
//
// The port is not held once reservePort returns: the pod must refuse
// connections until it listens, and only an unbound port is sure to. A
// socket bound but not listening would keep other programs off the port,
// but kernels answer a connection to it differently (Linux with a reset;
// others may drop it, which would turn the refusals the lab shows into
// timeouts). So another program on this machine can still bind the port
// while the pod does not listen yet or no longer listens. Before the pod
// listens, its listen then fails and the run stops with that error. After
// the pod has closed, that program would answer requests still sent to the
// stopped pod, and the lab would count fewer Case 1 failures than really
// happened. For that, the program would have to ask for that one port, or
// be given it by the system out of its thousands of ephemeral ports, in
// the seconds the run has left.
func reservePort(bind func() (net.Listener, error)) (int, error) {
	reserved.Lock()
	defer reserved.Unlock()
	var passed []net.Listener
	defer func() {
		for _, l := range passed {
			l.Close()
		}
	}()
	for range 64 {
		l, err := bind()
		if err != nil {
			return 0, fmt.Errorf("%w: taking a port for a pod: %v", errSetup, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if !reserved.ports[port] {
			l.Close()
			reserved.ports[port] = true
			return port, nil
		}
		passed = append(passed, l)
	}
	return 0, fmt.Errorf("%w: the system offered 64 ports in a row that other pods of this process hold", errSetup)
}

package traffic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
)

// dialErr and ioErr build errors the way the net package reports them.
func dialErr(errno syscall.Errno) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(198, 18, 0, 9), Port: 80},
		Err: os.NewSyscallError("connect", errno)}
}

func ioErr(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, errno)}
}

// viaClient wraps err as net/http's client returns it.
func viaClient(err error) error {
	return &url.Error{Op: "Get", URL: "http://rollguard/", Err: err}
}

// TestClassify: each errno, bare and as net and net/http wrap it, maps to
// its class. Loopback cannot produce EHOSTUNREACH or ENETUNREACH, so these
// are synthetic here; engine tests produce the others with real sockets.
func TestClassify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		err   error
		phase phase
		want  Class
	}{
		{"nil", nil, phaseResponse, OK},
		{"ECONNREFUSED", dialErr(syscall.ECONNREFUSED), phaseConnect, Refused},
		{"EHOSTUNREACH", dialErr(syscall.EHOSTUNREACH), phaseConnect, NoRoute},
		{"EHOSTUNREACH via net/http", viaClient(dialErr(syscall.EHOSTUNREACH)), phaseConnect, NoRoute},
		{"EHOSTUNREACH bare", syscall.EHOSTUNREACH, phaseConnect, NoRoute},
		{"EHOSTUNREACH on write", ioErr("write", syscall.EHOSTUNREACH), phaseResponse, NoRoute},
		{"ENETUNREACH", dialErr(syscall.ENETUNREACH), phaseConnect, NetUnreachable},
		{"ECONNRESET on read", ioErr("read", syscall.ECONNRESET), phaseResponse, Reset},
		{"ECONNRESET via net/http", viaClient(ioErr("read", syscall.ECONNRESET)), phaseResponse, Reset},
		{"EPIPE on write", ioErr("write", syscall.EPIPE), phaseResponse, Reset},
		{"EPIPE via net/http", viaClient(ioErr("write", syscall.EPIPE)), phaseResponse, Reset},
		{"EPIPE bare", syscall.EPIPE, phaseResponse, Reset},
		{"deadline while connecting", &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, phaseConnect, ConnectTimeout},
		{"deadline while reading", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, phaseResponse, ResponseTimeout},
		{"client timeout", viaClient(context.DeadlineExceeded), phaseResponse, ResponseTimeout},
		{"dial context timeout", &net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded}, phaseConnect, ConnectTimeout},
		{"EOF", io.EOF, phaseResponse, EOF},
		{"unexpected EOF", fmt.Errorf("reading body: %w", io.ErrUnexpectedEOF), phaseResponse, EOF},
		{"EOF via net/http", viaClient(io.EOF), phaseResponse, EOF},
		{"unknown", errors.New("malformed HTTP response"), phaseResponse, Other},
		{"another errno", dialErr(syscall.EACCES), phaseConnect, Other},
	} {
		if got := classify(tc.err, tc.phase); got != tc.want {
			t.Errorf("%s: classify(%v) = %s, want %s", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestClassifyStatus pins the boundaries: 2xx and 3xx are fine, 500 to 599
// are the server's failures, everything else another HTTP failure.
func TestClassifyStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code int
		want Class
	}{
		{100, HTTPOther}, {199, HTTPOther},
		{200, OK}, {204, OK}, {299, OK}, {301, OK}, {399, OK},
		{400, HTTPOther}, {404, HTTPOther}, {429, HTTPOther}, {499, HTTPOther},
		{500, HTTP5xx}, {501, HTTP5xx}, {502, HTTP5xx}, {503, HTTP5xx}, {504, HTTP5xx}, {599, HTTP5xx},
	} {
		if got := classifyStatus(tc.code); got != tc.want {
			t.Errorf("classifyStatus(%d) = %s, want %s", tc.code, got, tc.want)
		}
	}
}

// TestClassesAreListed: every class the classifiers return is in Classes,
// so reports that iterate Classes never drop a count.
func TestClassesAreListed(t *testing.T) {
	t.Parallel()
	listed := map[Class]bool{}
	for _, c := range Classes {
		if listed[c] {
			t.Errorf("%s listed twice", c)
		}
		listed[c] = true
	}
	for _, c := range []Class{OK, Refused, NoRoute, NetUnreachable, Reset, ConnectTimeout, ResponseTimeout, EOF, HTTP5xx, HTTPOther, Other} {
		if !listed[c] {
			t.Errorf("%s missing from Classes", c)
		}
	}
	if OK.Failed() || !Refused.Failed() || !HTTP5xx.Failed() {
		t.Error("Failed: only OK is not a failure")
	}
}

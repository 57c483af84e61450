// Package traffic implements rollguard's open-loop traffic engine: requests
// are scheduled at a fixed rate, each stamped with the time it was meant to
// be sent, so a slow or hanging request never delays the next (no
// coordinated omission). Every result is classified by what the network
// said (refused, reset, no route, timeout, ...) and streamed to sinks, so a
// long run stays in bounded memory. `rollguard lab` and `verify` share it.
package traffic

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// Class is what became of one request.
type Class string

// The classes. Each failure class maps to one network or HTTP outcome;
// "no route to host" keeps its own class because it means the address is
// gone, not that nothing listens on it.
const (
	OK              Class = "ok"
	Refused         Class = "refused"          // ECONNREFUSED: nothing listens there
	NoRoute         Class = "no-route"         // EHOSTUNREACH: the address is gone (ARP failed)
	NetUnreachable  Class = "net-unreachable"  // ENETUNREACH
	Reset           Class = "reset"            // ECONNRESET, EPIPE
	ConnectTimeout  Class = "connect-timeout"  // no answer to the SYN
	ResponseTimeout Class = "response-timeout" // connected, no response in time
	EOF             Class = "eof"              // connection closed before a response
	HTTP5xx         Class = "http-5xx"
	HTTPOther       Class = "http-other" // another non-2xx/3xx status
	Other           Class = "other"
)

// Classes lists every class in report order.
var Classes = []Class{OK, Refused, Reset, ConnectTimeout, ResponseTimeout, NoRoute, NetUnreachable, EOF, HTTP5xx, HTTPOther, Other}

// Failed reports whether the class is a failure.
func (c Class) Failed() bool { return c != OK }

// phase says where in a request an error happened.
type phase int

const (
	phaseConnect phase = iota
	phaseResponse
)

// classify maps an error to its class with errors.Is on the errno, the
// way the kernel reported it.
func classify(err error, p phase) Class {
	var ne net.Error
	switch {
	case err == nil:
		return OK
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case errors.Is(err, syscall.EHOSTUNREACH):
		return NoRoute
	case errors.Is(err, syscall.ENETUNREACH):
		return NetUnreachable
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return Reset
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		if p == phaseConnect {
			return ConnectTimeout
		}
		return ResponseTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return EOF
	}
	return Other
}

// classifyStatus maps an HTTP status to a class.
func classifyStatus(code int) Class {
	switch {
	case code >= 500:
		return HTTP5xx
	case code >= 400 || code < 200:
		return HTTPOther
	}
	return OK
}

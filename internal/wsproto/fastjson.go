package wsproto

import (
	"bytes"
	"encoding/json"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

// parseJSONFast reads the requests clients send nearly always, an object of
// plain members such as {"id":"c7-3","task":"fib","n":90}, without
// encoding/json's reflection and allocations. ok is false for anything
// else it would have to think about (nested values, escapes in the task or
// a key, a repeated member, a literal id, malformed JSON), and parseJSON
// then decides: for every frame this accepts, the two agree (FuzzParseFast
// checks it).
func parseJSONFast(frame []byte, d Defaults) (req Request, perr *taskproto.Error, ok bool) {
	s := scanner{b: frame}
	s.space()
	if !s.eat('{') {
		return req, nil, false
	}
	req.JSON = true
	var id, task, n, timing, tp []byte
	s.space()
	if s.eat('}') {
		return parseFastMembers(req, id, task, n, timing, tp, d)
	}
	for {
		s.space()
		key, esc, okKey := s.str()
		if !okKey || esc {
			return req, nil, false
		}
		s.space()
		if !s.eat(':') {
			return req, nil, false
		}
		s.space()
		val, okVal := s.value()
		if !okVal {
			return req, nil, false
		}
		var slot *[]byte
		switch string(key[1 : len(key)-1]) {
		case "id":
			slot = &id
		case "task":
			slot = &task
		case "n":
			slot = &n
		case "timing":
			slot = &timing
		case "traceparent":
			slot = &tp
		}
		if slot != nil {
			if *slot != nil {
				return req, nil, false // a repeated member: the map's rule is parseJSON's
			}
			*slot = val
		}
		s.space()
		if s.eat(',') {
			continue
		}
		if !s.eat('}') {
			return req, nil, false
		}
		break
	}
	s.space()
	if s.i != len(s.b) {
		return req, nil, false
	}
	return parseFastMembers(req, id, task, n, timing, tp, d)
}

func parseFastMembers(req Request, id, task, n, timing, tp []byte, d Defaults) (Request, *taskproto.Error, bool) {
	if id != nil {
		if c := id[0]; c != '"' && c != '-' && (c < '0' || c > '9') {
			return req, nil, false
		}
		req.ID = json.RawMessage(bytes.Clone(id)) // the frame's buffer is reused
	}
	if task == nil || task[0] != '"' || bytes.IndexByte(task, '\\') >= 0 {
		return req, nil, false
	}
	kind := string(task[1 : len(task)-1])
	if !taskproto.IsKind(kind) {
		return req, nil, false
	}
	req.Task = taskproto.Task{Kind: kind, N: tasks.DefaultN(kind, d.FibN)}
	if timing != nil {
		v, err := jsonBool(timing)
		if err != nil {
			return req, nil, false
		}
		req.Timing = v
	}
	if tp != nil && string(tp) != "null" {
		if tp[0] != '"' || bytes.IndexByte(tp, '\\') >= 0 {
			return req, nil, false
		}
		if v := string(tp[1 : len(tp)-1]); ValidTraceparent(v) {
			req.Traceparent = v
		}
	}
	if n != nil && string(n) != "null" {
		if n[0] != '-' && (n[0] < '0' || n[0] > '9') {
			return req, nil, false
		}
		v, err := wholeJSONNumber(n)
		if err != nil {
			return req, err, true
		}
		req.Task.N = v
	}
	return req, nil, true
}

// scanner walks one JSON text; it accepts only what encoding/json accepts,
// and gives up (false) on nested objects and arrays.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// value scans a string, number or literal and returns it raw.
func (s *scanner) value() ([]byte, bool) {
	if s.i >= len(s.b) {
		return nil, false
	}
	start := s.i
	switch c := s.b[s.i]; {
	case c == '"':
		v, _, ok := s.str()
		return v, ok
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number(start)
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
				s.i += len(lit)
				return s.b[start:s.i], true
			}
		}
	}
	return nil, false
}

// str scans a string, quotes included; esc says it holds an escape. The
// frame is valid UTF-8 (Parse checked), so only control bytes and escapes
// need a look.
func (s *scanner) str() (raw []byte, esc, ok bool) {
	start := s.i
	if !s.eat('"') {
		return nil, false, false
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start:s.i], esc, true
		case c < 0x20:
			return nil, false, false
		case c == '\\':
			esc = true
			if s.i+1 >= len(s.b) {
				return nil, false, false
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) || !isHex4(s.b[s.i+2:s.i+6]) {
					return nil, false, false
				}
				s.i += 6
			default:
				return nil, false, false
			}
		default:
			s.i++
		}
	}
	return nil, false, false
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// number scans a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number(start int) ([]byte, bool) {
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	s.eat('-')
	if s.eat('0') {
		if s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			return nil, false
		}
	} else if digits() == 0 {
		return nil, false
	}
	if s.eat('.') && digits() == 0 {
		return nil, false
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if digits() == 0 {
			return nil, false
		}
	}
	return s.b[start:s.i], true
}

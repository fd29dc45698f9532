// Command subscribe subscribes to spout topics and resumes after every
// disconnect. Standard library only.
//
//	go run ./subscribe news 'orders.*.created'
//	go run ./subscribe -last-event-id 1795567982000042 news   resume a stored position
//
// Environment: SPOUT_URL (default http://localhost:8080) and SPOUT_TOKEN (a
// JWT, sent as "Authorization: Bearer", when the broker requires one).
// Prints one JSON object per event on stdout: {"id": ..., "event": ..., "data": ...}.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	readTimeout = 45 * time.Second // without a byte; > 2 x the broker's --heartbeat-ms
	maxBackoff  = 60 * time.Second
)

// Event is one dispatched event. Type is "message" unless the event had an
// "event:" field; ID is the last event id after it (EventSource's
// lastEventId): the id it carried, or the one before it if it carried none
// (spout-gap).
type Event struct {
	Type, Data, ID string
}

// Parser is the event-stream parser of the WHATWG HTML standard (9.2.6):
// Feed it bytes as they arrive, get the complete events back.
type Parser struct {
	LastEventID string        // carried over from the previous connection
	Retry       time.Duration // the latest valid "retry:" field, 0 if none

	id, typ  string
	data     []string
	hasData  bool
	buf      []byte
	skipLF   bool // the previous chunk ended in CR
	notFirst bool
}

// NewParser starts a parser for a new connection.
func NewParser(lastEventID string) *Parser {
	return &Parser{LastEventID: lastEventID, id: lastEventID}
}

// Feed parses chunk and returns the events it completed.
func (p *Parser) Feed(chunk []byte) []Event {
	var events []Event
	buf := append(p.buf, chunk...)
	pos := 0
	for {
		if p.skipLF && pos < len(buf) {
			p.skipLF = false
			if buf[pos] == '\n' { // CRLF split across chunks
				pos++
			}
		}
		i := bytes.IndexAny(buf[pos:], "\r\n")
		if i < 0 {
			break
		}
		line := buf[pos : pos+i]
		pos += i + 1
		if buf[pos-1] == '\r' {
			if pos < len(buf) && buf[pos] == '\n' {
				pos++
			} else if pos == len(buf) {
				p.skipLF = true
			}
		}
		if ev, ok := p.line(line); ok {
			events = append(events, ev)
		}
	}
	p.buf = append(p.buf[:0], buf[pos:]...)
	return events
}

func (p *Parser) line(b []byte) (Event, bool) {
	line := string(b)
	if !utf8.ValidString(line) {
		line = strings.ToValidUTF8(line, "\uFFFD")
	}
	if !p.notFirst {
		p.notFirst = true
		line = strings.TrimPrefix(line, "\uFEFF")
	}
	if line == "" {
		return p.dispatch()
	}
	if strings.HasPrefix(line, ":") { // a comment: ":ok", heartbeats
		return Event{}, false
	}
	field, value, _ := strings.Cut(line, ":")
	value = strings.TrimPrefix(value, " ")
	switch field {
	case "data":
		p.data = append(p.data, value)
		p.hasData = true
	case "event":
		p.typ = value
	case "id":
		if !strings.ContainsRune(value, 0) {
			p.id = value
		}
	case "retry":
		if n, err := strconv.ParseUint(value, 10, 31); err == nil {
			p.Retry = time.Duration(n) * time.Millisecond
		}
	} // any other field is ignored
	return Event{}, false
}

func (p *Parser) dispatch() (Event, bool) {
	p.LastEventID = p.id // persists: not reset per event
	data, typ, has := p.data, p.typ, p.hasData
	p.data, p.typ, p.hasData = nil, "", false
	if !has {
		return Event{}, false
	}
	if typ == "" {
		typ = "message"
	}
	return Event{Type: typ, Data: strings.Join(data, "\n"), ID: p.LastEventID}, true
}

// FatalError means retrying cannot help (bad topic, bad or insufficient token).
type FatalError struct{ Status, Body string }

func (e *FatalError) Error() string { return e.Status + " " + e.Body }

// Subscriber streams events from spout for ever, reconnecting with
// Last-Event-ID, so that each event arrives once, in order, or a spout-gap
// says what could not be replayed.
type Subscriber struct {
	URL         string               // e.g. http://localhost:8080/events?topic=news
	Token       func() string        // a JWT, asked for before every connection; may be nil
	LastEventID string               // where to resume; updated as events arrive
	Handle      func(Event)          // called for every event, spout-gap included
	Client      *http.Client         // default http.DefaultClient
	Logf        func(string, ...any) // default log.Printf
	rng         *rand.Rand
}

// Run returns only when ctx ends (ctx.Err()) or on a *FatalError.
func (s *Subscriber) Run(ctx context.Context) error {
	if s.Client == nil {
		s.Client = http.DefaultClient
	}
	if s.Logf == nil {
		s.Logf = log.Printf
	}
	s.rng = rand.New(rand.NewSource(time.Now().UnixNano()))
	retry := 3 * time.Second // until the broker sends "retry:"
	failures := 0
	for {
		var wait time.Duration
		opened, err := s.stream(ctx, &retry, &wait)
		var fatal *FatalError
		if errors.As(err, &fatal) || ctx.Err() != nil {
			return err
		}
		if opened {
			failures = 0
		}
		s.Logf("%v", err)
		failures++
		// the broker's retry: (already jittered per connection), doubled
		// while attempts keep failing, plus up to 50 % of our own jitter
		delay := retry << (failures - 1)
		if failures > 16 || delay > maxBackoff {
			delay = maxBackoff
		}
		if wait > delay {
			delay = wait
		}
		delay += time.Duration(s.rng.Int63n(int64(delay)/2 + 1))
		s.Logf("reconnecting in %v", delay.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// stream runs one connection until it ends; opened tells whether the broker
// accepted it.
func (s *Subscriber) stream(ctx context.Context, retry, wait *time.Duration) (opened bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", s.URL, nil)
	if err != nil {
		return false, &FatalError{Status: "bad URL", Body: err.Error()}
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if s.LastEventID != "" {
		req.Header.Set("Last-Event-ID", s.LastEventID)
	}
	if s.Token != nil {
		if tok := s.Token(); tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	// A dead connection sends nothing, not even heartbeats: cancel the
	// request when no byte arrives for readTimeout.
	watchdog := time.AfterFunc(readTimeout, cancel)
	defer watchdog.Stop()
	resp, err := s.Client.Do(req)
	if err != nil {
		return false, fmt.Errorf("connection failed: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
		msg := strings.TrimSpace(string(body))
		if resp.StatusCode < 500 && resp.StatusCode != 408 && resp.StatusCode != 429 {
			return false, &FatalError{Status: resp.Status, Body: msg}
		}
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			*wait = time.Duration(secs) * time.Second
		}
		return false, fmt.Errorf("%s %s", resp.Status, msg)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return false, &FatalError{Status: "not an event stream", Body: ct}
	}
	s.Logf("connected to %s (Last-Event-ID: %q)", s.URL, s.LastEventID)
	p := NewParser(s.LastEventID)
	buf := make([]byte, 64*1024)
	for {
		watchdog.Reset(readTimeout)
		n, err := resp.Body.Read(buf)
		for _, ev := range p.Feed(buf[:n]) {
			s.LastEventID = p.LastEventID
			s.Handle(ev)
		}
		s.LastEventID = p.LastEventID
		if p.Retry > 0 {
			*retry = p.Retry
		}
		if err == io.EOF {
			return true, errors.New("stream ended") // restart, drain, token expiry
		}
		if err != nil {
			return true, fmt.Errorf("connection lost: %w", err)
		}
	}
}

func main() {
	last := flag.String("last-event-id", "", "resume after this id")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: subscribe [-last-event-id ID] TOPIC...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	log.SetFlags(0)
	log.SetPrefix("subscribe: ")
	base := os.Getenv("SPOUT_URL")
	if base == "" {
		base = "http://localhost:8080"
	}
	q := url.Values{"topic": flag.Args()}
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	sub := &Subscriber{
		URL:         strings.TrimSuffix(base, "/") + "/events?" + q.Encode(),
		Token:       func() string { return os.Getenv("SPOUT_TOKEN") }, // refresh it here if it can expire
		LastEventID: *last,
		Handle: func(ev Event) {
			if ev.Type == "spout-gap" {
				// History no longer reaches back to our last id (or the
				// broker restarted): some events were missed. Reload the
				// state they built from its source of truth; the stream
				// goes on from here.
				var gap struct {
					Reason      string `json:"reason"`
					LastEventID string `json:"last_event_id"`
				}
				json.Unmarshal([]byte(ev.Data), &gap)
				log.Printf("missed events after id %s (%s): resynchronise", gap.LastEventID, gap.Reason)
			}
			out.Encode(struct {
				ID    string `json:"id"`
				Event string `json:"event"`
				Data  string `json:"data"`
			}{ev.ID, ev.Type, ev.Data})
		},
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := sub.Run(ctx); err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
}

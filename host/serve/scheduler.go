package serve

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/clock"
)

// Batching modes, as the startup line and /metrics name them.
const (
	Continuous = "continuous" // the engine's Serve: requests join and leave at step boundaries
	Static     = "static"     // the engine has no Serve: waiting requests run as Generate batches
)

// Errors of Submit.
var (
	// ErrQueueFull is a request refused because MaxQueue requests already wait (HTTP 429).
	ErrQueueFull = errors.New("the queue is full")
	// ErrClosed is a request refused because the server is shutting down (HTTP 503).
	ErrClosed = errors.New("the server is shutting down")
)

// job is one request from the moment it is queued until its result is delivered.
type job struct {
	id      string
	prompt  sdk.Prompt
	dec     sdk.Decoding
	arrival int64 // clock.Mono when it was queued

	mu     sync.Mutex
	toks   []sdk.StepToken    // tokens not yet taken by the handler
	res    *sdk.RequestResult // set once, when the request is done
	err    error              // the scheduler's own failure (the engine stopped)
	notify chan struct{}      // cap 1: something new to take

	// guarded by the Scheduler's mu
	state   int // queued, running, finished
	dropped bool
	ntok    int   // tokens delivered so far (metrics)
	lastTok int64 // clock.Mono of the last token (metrics)
}

const (
	queued = iota
	running
	finished
)

func newJob(id string, p sdk.Prompt, d sdk.Decoding) *job {
	p.ID = id
	return &job{id: id, prompt: p, dec: d, notify: make(chan struct{}, 1)}
}

func (j *job) wake() {
	select {
	case j.notify <- struct{}{}:
	default:
	}
}

func (j *job) push(t sdk.StepToken) {
	j.mu.Lock()
	j.toks = append(j.toks, t)
	j.mu.Unlock()
	j.wake()
}

func (j *job) finish(r *sdk.RequestResult, err error) {
	j.mu.Lock()
	if j.res == nil && j.err == nil {
		j.res, j.err = r, err
	}
	j.mu.Unlock()
	j.wake()
}

// take returns the tokens that arrived since the last take and, once done, the result or error.
func (j *job) take() ([]sdk.StepToken, *sdk.RequestResult, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	t := j.toks
	j.toks = nil
	return t, j.res, j.err
}

// Scheduler queues requests and runs them on the engine, at most MaxBatch at once. Submit,
// Cancel and Close are safe for concurrent use; Run runs the engine loop until Close (every
// request done) or ctx's end.
type Scheduler struct {
	eng      sdk.Engine
	maxBatch int
	maxQueue int
	mode     string
	m        *metrics

	mu      sync.Mutex
	queue   []*job
	jobs    map[string]*job // running (submitted to the engine)
	cancels []string        // running jobs to cancel at the engine
	closed  bool            // no new requests
	failed  error           // the engine loop ended with this error
	kick    chan struct{}   // cap 1
}

// NewScheduler returns a scheduler over eng in mode (Continuous needs eng to be an
// sdk.ContinuousEngine).
func newScheduler(eng sdk.Engine, mode string, maxBatch, maxQueue int, m *metrics) *Scheduler {
	return &Scheduler{eng: eng, mode: mode, maxBatch: maxBatch, maxQueue: maxQueue, m: m,
		jobs: map[string]*job{}, kick: make(chan struct{}, 1)}
}

// ProbeContinuous reports whether eng runs Serve: it opens a Serve stream with no request.
// sdk.ErrUnimplemented means no (static batching); any other error is returned.
func ProbeContinuous(ctx context.Context, eng sdk.Engine) (bool, error) {
	ce, ok := eng.(sdk.ContinuousEngine)
	if !ok {
		return false, nil
	}
	in := make(chan sdk.ServeRequest)
	close(in)
	err := ce.Serve(ctx, sdk.ServeOptions{StepEvents: true}, in, func(sdk.ServeEvent) error {
		return errors.New("the engine emitted an event for a Serve call without requests")
	})
	if errors.Is(err, sdk.ErrUnimplemented) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("engine Serve: %w", err)
	}
	return true, nil
}

func (s *Scheduler) wakeLoop() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// gauges updates the queue depth and running batch gauges; s.mu is held.
func (s *Scheduler) gauges() {
	s.m.queueDepth.Set(float64(len(s.queue)))
	s.m.running.Set(float64(len(s.jobs)))
}

// submit queues j, or refuses it with ErrQueueFull, ErrClosed or the engine's failure.
func (s *Scheduler) submit(j *job) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.failed != nil:
		return s.failed
	case s.closed:
		return ErrClosed
	case len(s.queue) >= s.maxQueue:
		return ErrQueueFull
	}
	j.arrival = clock.Mono()
	s.queue = append(s.queue, j)
	s.gauges()
	s.wakeLoop()
	return nil
}

// cancel drops j: a queued job leaves the queue at once (finished as cancelled), a running one is
// cancelled at the engine (continuous batching) or its result discarded (static batching).
func (s *Scheduler) cancel(j *job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j.dropped = true
	switch j.state {
	case queued:
		for i, q := range s.queue {
			if q == j {
				s.queue = append(s.queue[:i], s.queue[i+1:]...)
				break
			}
		}
		j.state = finished
		s.gauges()
		j.finish(&sdk.RequestResult{ID: j.id, FinishReason: "cancelled"}, nil)
	case running:
		if s.mode == Continuous {
			s.cancels = append(s.cancels, j.id)
			s.wakeLoop()
		}
	}
}

// close refuses new requests from now on; those queued and running go on.
func (s *Scheduler) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wakeLoop()
}

// cancelAll cancels every queued and running request (the grace period is over).
func (s *Scheduler) cancelAll() {
	s.mu.Lock()
	all := append([]*job{}, s.queue...)
	for _, j := range s.jobs {
		all = append(all, j)
	}
	s.mu.Unlock()
	for _, j := range all {
		s.cancel(j)
	}
}

// fail ends every queued and running request with err and refuses new ones.
func (s *Scheduler) fail(err error) {
	s.mu.Lock()
	s.failed = err
	all := append([]*job{}, s.queue...)
	for _, j := range s.jobs {
		all = append(all, j)
	}
	s.queue, s.jobs = nil, map[string]*job{}
	s.gauges()
	s.mu.Unlock()
	for _, j := range all {
		j.finish(nil, err)
	}
}

// Run runs the engine loop until close was called and every request is done (nil), ctx ends
// (its error) or the engine fails (its error; every request still waiting gets it).
func (s *Scheduler) run(ctx context.Context) error {
	var err error
	if s.mode == Continuous {
		err = s.runContinuous(ctx)
	} else {
		err = s.runStatic(ctx)
	}
	if err != nil {
		s.fail(fmt.Errorf("engine: %w", err))
	}
	return err
}

// next takes what the engine loop must send now: cancels, and queued jobs up to MaxBatch
// running. done says that the scheduler is closed and nothing is left.
func (s *Scheduler) next() (msgs []sdk.ServeRequest, done bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.cancels {
		if _, ok := s.jobs[id]; ok {
			msgs = append(msgs, sdk.ServeRequest{Prompt: sdk.Prompt{ID: id}, Cancel: true})
		}
	}
	s.cancels = nil
	for len(s.jobs) < s.maxBatch && len(s.queue) > 0 {
		j := s.queue[0]
		s.queue = s.queue[1:]
		j.state = running
		s.jobs[j.id] = j
		msgs = append(msgs, sdk.ServeRequest{Prompt: j.prompt, Decoding: j.dec})
	}
	s.gauges()
	return msgs, s.closed && len(s.queue) == 0 && len(s.jobs) == 0
}

func (s *Scheduler) runContinuous(ctx context.Context) error {
	ce := s.eng.(sdk.ContinuousEngine)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in := make(chan sdk.ServeRequest)
	errc := make(chan error, 1)
	go func() { errc <- ce.Serve(ctx, sdk.ServeOptions{StepEvents: true}, in, s.emit) }()
	early := func(err error) error {
		if err == nil {
			return errors.New("Serve returned before its request stream was closed")
		}
		return err
	}
	for {
		msgs, done := s.next()
		for _, m := range msgs {
			select {
			case in <- m:
			case err := <-errc:
				return early(err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if done {
			close(in)
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case <-s.kick:
		case err := <-errc:
			return early(err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// emit receives the engine's events (never concurrently).
func (s *Scheduler) emit(ev sdk.ServeEvent) error {
	if st := ev.Step; st != nil {
		s.m.batchSize.Observe(float64(st.BatchSize))
		for _, t := range st.Tokens {
			s.mu.Lock()
			j := s.jobs[t.ID]
			if j != nil {
				s.observeToken(j, st.MonoNS)
			}
			s.mu.Unlock()
			if j == nil {
				return fmt.Errorf("the engine sent a token for request %q, which is not running", t.ID)
			}
			j.push(t)
		}
	}
	if r := ev.Done; r != nil {
		s.mu.Lock()
		j := s.jobs[r.ID]
		delete(s.jobs, r.ID)
		if j != nil {
			j.state = finished
		}
		s.gauges()
		s.mu.Unlock()
		if j == nil {
			return fmt.Errorf("the engine finished request %q, which is not running", r.ID)
		}
		s.m.engineDone(r)
		j.finish(r, nil)
		s.wakeLoop()
	}
	return nil
}

// observeToken records TTFT or ITL for a token of j at mono; s.mu is held.
func (s *Scheduler) observeToken(j *job, mono int64) {
	if j.ntok == 0 {
		s.m.ttft.Observe(seconds(mono - j.arrival))
	} else {
		s.m.itl.Observe(seconds(mono - j.lastTok))
	}
	j.ntok++
	j.lastTok = mono
}

func seconds(ns int64) float64 { return float64(ns) / 1e9 }

// runStatic runs the waiting requests as static batches: the oldest waiting request and every
// other waiting one with the same decoding parameters, at most MaxBatch, in one Generate call.
func (s *Scheduler) runStatic(ctx context.Context) error {
	for {
		batch, done := s.nextStatic()
		if done {
			return nil
		}
		if len(batch) == 0 {
			select {
			case <-s.kick:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		req := sdk.GenerateRequest{Decoding: batch[0].dec}
		byID := map[string]*job{}
		for _, j := range batch {
			req.Prompts = append(req.Prompts, j.prompt)
			byID[j.id] = j
		}
		s.m.batchSize.Observe(float64(len(batch)))
		_, err := s.eng.Generate(ctx, req, func(r sdk.RequestResult) error {
			j := byID[r.ID]
			if j == nil {
				return fmt.Errorf("the engine answered for request %q, which is not in the batch", r.ID)
			}
			delete(byID, r.ID)
			s.mu.Lock()
			for _, t := range r.TokenMonoNS {
				s.observeToken(j, t)
			}
			delete(s.jobs, r.ID)
			j.state = finished
			dropped := j.dropped
			s.gauges()
			s.mu.Unlock()
			s.m.engineDone(&r)
			if dropped {
				r.FinishReason = "cancelled"
			}
			j.finish(&r, nil)
			return nil
		})
		if err != nil {
			return err
		}
		if len(byID) > 0 {
			return fmt.Errorf("the engine's batch ended without a result for %d of its %d requests", len(byID), len(batch))
		}
	}
}

func (s *Scheduler) nextStatic() (batch []*job, done bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return nil, s.closed
	}
	dec := s.queue[0].dec
	rest := s.queue[:0]
	for _, j := range s.queue {
		if len(batch) < s.maxBatch && j.dec == dec {
			j.state = running
			s.jobs[j.id] = j
			batch = append(batch, j)
		} else {
			rest = append(rest, j)
		}
	}
	s.queue = rest
	s.gauges()
	return batch, false
}

package serve

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lemctl/lemctl/sdk"
)

// metrics are the server's Prometheus metrics, on a registry of their own (docs/serving.md,
// "lemctl serve"). The mean batch size is lemctl_serve_batch_size_sum / _count.
type metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	promptToks prometheus.Counter
	genToks    prometheus.Counter
	queueDepth prometheus.Gauge
	running    prometheus.Gauge
	batchSize  prometheus.Histogram
	ttft       prometheus.Histogram
	itl        prometheus.Histogram
}

// latencyBuckets span 1 ms to about 65 s.
var latencyBuckets = prometheus.ExponentialBuckets(0.001, 2, 17)

func newMetrics(model, engine, mode string, maxBatch int) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	info := prometheus.NewGauge(prometheus.GaugeOpts{Name: "lemctl_serve_info", Help: "The served model, the engine plugin and the batching mode (continuous, or static when the engine has no continuous batching); always 1.",
		ConstLabels: prometheus.Labels{"model": model, "engine": engine, "batching": mode}})
	info.Set(1)
	f(info)
	maxB := prometheus.NewGauge(prometheus.GaugeOpts{Name: "lemctl_serve_max_batch", Help: "The most requests that run at once (--max-batch)."})
	maxB.Set(float64(maxBatch))
	f(maxB)
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lemctl_serve_requests_total",
		Help: "Requests answered, by HTTP status and finish reason (stop, length, cancelled, error; none for a request refused before it ran)."}, []string{"status", "finish_reason"})
	f(m.requests)
	m.promptToks = prometheus.NewCounter(prometheus.CounterOpts{Name: "lemctl_serve_prompt_tokens_total", Help: "Prompt tokens of the requests the engine ran."})
	f(m.promptToks)
	m.genToks = prometheus.NewCounter(prometheus.CounterOpts{Name: "lemctl_serve_generation_tokens_total", Help: "Tokens the engine generated (cancelled requests included)."})
	f(m.genToks)
	m.queueDepth = prometheus.NewGauge(prometheus.GaugeOpts{Name: "lemctl_serve_queue_depth", Help: "Requests waiting for a place in the running batch."})
	f(m.queueDepth)
	m.running = prometheus.NewGauge(prometheus.GaugeOpts{Name: "lemctl_serve_running_requests", Help: "Requests in the running batch."})
	f(m.running)
	buckets := prometheus.LinearBuckets(1, 1, max(maxBatch, 1))
	m.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lemctl_serve_batch_size",
		Help: "Requests in the batch of each forward pass (continuous batching) or of each Generate call (static batching); sum/count is the mean batch size.", Buckets: buckets})
	f(m.batchSize)
	m.ttft = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lemctl_serve_time_to_first_token_seconds",
		Help: "From a request's arrival in the queue to its first token, on the engine's clock.", Buckets: latencyBuckets})
	f(m.ttft)
	m.itl = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lemctl_serve_inter_token_latency_seconds",
		Help: "Between consecutive tokens of a request, on the engine's clock.", Buckets: latencyBuckets})
	f(m.itl)
	return m
}

// engineDone counts the tokens of a request the engine finished.
func (m *metrics) engineDone(r *sdk.RequestResult) {
	m.promptToks.Add(float64(r.InputTokens))
	m.genToks.Add(float64(r.Tokens()))
}

// answered counts one answered request.
func (m *metrics) answered(status int, finish string) {
	if finish == "" {
		finish = "none"
	}
	m.requests.WithLabelValues(statusLabel(status), finish).Inc()
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

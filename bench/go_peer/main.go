// Command go_peer is a plain validating admission webhook for pods, written the way a Go
// developer would write one in an afternoon with the standard library only (net/http,
// crypto/tls, encoding/json). It is the peer pi0-webhook is measured against in
// bench/webhook_vs_go.sh and bench/webhook_bench.sh: the same TLS, HTTP and AdmissionReview
// round trip, with a small decision of its own instead of Pi0's fleet view.
//
// The decision: the pod's effective cpu and memory requests (the sum over its containers, or
// the largest init container when that is larger, plus spec.overhead) against five node
// records held in memory. A node record has, per resource, its allocatable amount, a projected
// peak (the utilization it is expected to reach) and an isolation (the share of the node a new
// pod can still get without interference). The pod is admitted when some node whose labels
// match the pod's nodeSelector has, for cpu and for memory,
//
//	isolation >= request/allocatable + margin
//
// and denied otherwise, with a message naming the node that came closest.
//
// Endpoints: POST /validate-pods (AdmissionReview admission.k8s.io/v1 in and out, the
// request's uid echoed), GET /healthz.
//
//	go_peer --listen 127.0.0.1:8443 --cert tls.crt --key tls.key
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// --- AdmissionReview and the parts of a Pod the decision reads -------------------------------

type AdmissionReview struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Request    *AdmissionRequest  `json:"request,omitempty"`
	Response   *AdmissionResponse `json:"response,omitempty"`
}

type GroupVersionKind struct {
	Group   string `json:"group"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
}

type AdmissionRequest struct {
	UID       string           `json:"uid"`
	Kind      GroupVersionKind `json:"kind"`
	Name      string           `json:"name,omitempty"`
	Namespace string           `json:"namespace,omitempty"`
	Operation string           `json:"operation"`
	Object    *Pod             `json:"object,omitempty"` // this webhook is registered for pods only
	DryRun    *bool            `json:"dryRun,omitempty"`
}

type Status struct {
	Code    int32  `json:"code,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

type AdmissionResponse struct {
	UID     string  `json:"uid"`
	Allowed bool    `json:"allowed"`
	Result  *Status `json:"status,omitempty"`
}

type ObjectMeta struct {
	Name         string            `json:"name,omitempty"`
	GenerateName string            `json:"generateName,omitempty"`
	Namespace    string            `json:"namespace,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
}

type Pod struct {
	Metadata ObjectMeta `json:"metadata"`
	Spec     PodSpec    `json:"spec"`
}

type PodSpec struct {
	NodeSelector   map[string]string   `json:"nodeSelector,omitempty"`
	InitContainers []Container         `json:"initContainers,omitempty"`
	Containers     []Container         `json:"containers"`
	Overhead       map[string]Quantity `json:"overhead,omitempty"`
}

type Container struct {
	Name      string               `json:"name"`
	Resources ResourceRequirements `json:"resources"`
}

type ResourceRequirements struct {
	Requests map[string]Quantity `json:"requests,omitempty"`
	Limits   map[string]Quantity `json:"limits,omitempty"`
}

// Quantity is a Kubernetes resource quantity as written ("500m", "1Gi", "2"); JSON numbers are
// accepted too. Parse turns it into a number of base units (cores, bytes).
type Quantity string

func (q *Quantity) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*q = Quantity(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("quantity: %s is neither a string nor a number", b)
	}
	*q = Quantity(n)
	return nil
}

var suffixes = map[string]float64{
	"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
	"E": 1e18, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50,
	"Ei": 1 << 60,
}

// Parse returns the quantity in base units. It accepts the forms Kubernetes writes: a decimal
// number followed by a binary suffix (Ki ... Ei), a decimal suffix (n u m k M G T P E), an
// exponent (e3, E-2) or nothing. Negative quantities are errors: a request cannot be negative.
func (q Quantity) Parse() (float64, error) {
	s := string(q)
	end := 0
	for end < len(s) && (s[end] >= '0' && s[end] <= '9' || s[end] == '.' || end == 0 && s[end] == '+') {
		end++
	}
	number, suffix := s[:end], s[end:]
	if number == "" || number == "+" || number == "." {
		return 0, fmt.Errorf("%q is not a quantity", s)
	}
	value, err := strconv.ParseFloat(number, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a quantity", s)
	}
	if multiplier, ok := suffixes[suffix]; ok {
		return value * multiplier, nil
	}
	if len(suffix) > 1 && (suffix[0] == 'e' || suffix[0] == 'E') {
		exponent, err := strconv.Atoi(suffix[1:])
		if err == nil && exponent >= -18 && exponent <= 18 {
			return value * math.Pow10(exponent), nil
		}
	}
	return 0, fmt.Errorf("%q is not a quantity", s)
}

// Requests are a pod's effective cpu (cores) and memory (bytes) requests.
type Requests struct {
	CPU    float64
	Memory float64
}

// parseRequests reads the cpu and memory of a container's requests (or of the overhead).
func parseRequests(list map[string]Quantity) (Requests, error) {
	var r Requests
	var err error
	if q, ok := list["cpu"]; ok {
		if r.CPU, err = q.Parse(); err != nil {
			return Requests{}, fmt.Errorf("cpu: %w", err)
		}
	}
	if q, ok := list["memory"]; ok {
		if r.Memory, err = q.Parse(); err != nil {
			return Requests{}, fmt.Errorf("memory: %w", err)
		}
	}
	return r, nil
}

// effectiveRequests computes what the scheduler reserves for the pod: per resource, the sum
// over the containers or the largest init container, whichever is larger, plus the overhead.
func effectiveRequests(spec *PodSpec) (Requests, error) {
	var sum, initMax Requests
	for i, c := range spec.Containers {
		r, err := parseRequests(c.Resources.Requests)
		if err != nil {
			return Requests{}, fmt.Errorf("spec.containers[%d].resources.requests.%w", i, err)
		}
		sum.CPU += r.CPU
		sum.Memory += r.Memory
	}
	for i, c := range spec.InitContainers {
		r, err := parseRequests(c.Resources.Requests)
		if err != nil {
			return Requests{}, fmt.Errorf("spec.initContainers[%d].resources.requests.%w", i, err)
		}
		initMax.CPU = math.Max(initMax.CPU, r.CPU)
		initMax.Memory = math.Max(initMax.Memory, r.Memory)
	}
	overhead, err := parseRequests(spec.Overhead)
	if err != nil {
		return Requests{}, fmt.Errorf("spec.overhead.%w", err)
	}
	return Requests{
		CPU:    math.Max(sum.CPU, initMax.CPU) + overhead.CPU,
		Memory: math.Max(sum.Memory, initMax.Memory) + overhead.Memory,
	}, nil
}

// --- The nodes and the decision ---------------------------------------------------------------

// ResourceState is one resource of a node.
type ResourceState struct {
	Allocatable   float64 // cores or bytes
	ProjectedPeak float64 // the utilization the node is expected to reach, 0..1
	Isolation     float64 // the share a new pod can still get without interference, 0..1
}

type NodeRecord struct {
	Name   string
	Labels map[string]string
	CPU    ResourceState
	Memory ResourceState
}

func nodeLabels(pool, zone, instanceType, hostname string) map[string]string {
	return map[string]string{
		"kubernetes.io/hostname":           hostname,
		"kubernetes.io/os":                 "linux",
		"kubernetes.io/arch":               "amd64",
		"node.pi0.io/pool":                 pool,
		"topology.kubernetes.io/region":    "region-1",
		"topology.kubernetes.io/zone":      zone,
		"node.kubernetes.io/instance-type": instanceType,
	}
}

// defaultNodes are the five records the peer decides on: general-purpose nodes in three zones
// (one of them running hot), a high-memory node and a batch node.
func defaultNodes() []NodeRecord {
	const gi = 1 << 30
	node := func(name, pool, zone, instanceType string, cores, memGi, cpuPeak, memPeak float64) NodeRecord {
		return NodeRecord{
			Name:   name,
			Labels: nodeLabels(pool, zone, instanceType, name),
			CPU:    ResourceState{Allocatable: cores, ProjectedPeak: cpuPeak, Isolation: 1 - cpuPeak},
			Memory: ResourceState{Allocatable: memGi * gi, ProjectedPeak: memPeak, Isolation: 1 - memPeak},
		}
	}
	return []NodeRecord{
		node("node-1", "general", "zone-a", "m5.2xlarge", 7.91, 29, 0.55, 0.60),
		node("node-2", "general", "zone-b", "m5.4xlarge", 15.89, 59, 0.40, 0.45),
		node("node-3", "general", "zone-c", "m5.4xlarge", 15.89, 59, 0.88, 0.70),
		node("node-4", "general", "zone-c", "m5.4xlarge", 15.89, 59, 0.35, 0.45),
		node("node-5", "highmem", "zone-a", "r5.4xlarge", 15.89, 123, 0.30, 0.50),
	}
}

func matchesSelector(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// shortfall is how far a resource is from the isolation the request needs (<= 0: it fits).
func shortfall(r ResourceState, request, margin float64) (need, short float64) {
	if r.Allocatable <= 0 {
		return math.Inf(1), math.Inf(1)
	}
	need = request/r.Allocatable + margin
	return need, need - r.Isolation
}

type Decision struct {
	Allowed bool
	Message string
}

func decide(pod *Pod, nodes []NodeRecord, margin float64) Decision {
	req, err := effectiveRequests(&pod.Spec)
	if err != nil {
		return Decision{Message: err.Error()}
	}
	var best *NodeRecord
	bestShort := math.Inf(1)
	candidates := 0
	for i := range nodes {
		n := &nodes[i]
		if !matchesSelector(n.Labels, pod.Spec.NodeSelector) {
			continue
		}
		candidates++
		cpuNeed, cpuShort := shortfall(n.CPU, req.CPU, margin)
		memNeed, memShort := shortfall(n.Memory, req.Memory, margin)
		if cpuShort <= 0 && memShort <= 0 {
			return Decision{Allowed: true, Message: fmt.Sprintf(
				"fits %s: cpu isolation %.2f >= %.2f, memory isolation %.2f >= %.2f",
				n.Name, n.CPU.Isolation, cpuNeed, n.Memory.Isolation, memNeed)}
		}
		if s := math.Max(cpuShort, memShort); s < bestShort {
			best, bestShort = n, s
		}
	}
	if candidates == 0 {
		return Decision{Message: fmt.Sprintf("no node among %d matches the nodeSelector %s",
			len(nodes), formatSelector(pod.Spec.NodeSelector))}
	}
	var failing []string
	for _, r := range []struct {
		name    string
		state   ResourceState
		request float64
	}{{"cpu", best.CPU, req.CPU}, {"memory", best.Memory, req.Memory}} {
		need, short := shortfall(r.state, r.request, margin)
		if short > 0 {
			failing = append(failing, fmt.Sprintf(
				"%s isolation %.2f < %.2f (request %.2f + margin %.2f; projected peak %.2f)",
				r.name, r.state.Isolation, need, need-margin, margin, r.state.ProjectedPeak))
		}
	}
	return Decision{Message: fmt.Sprintf("no node has room for cpu %s, memory %s: closest %s: %s",
		strconv.FormatFloat(req.CPU, 'f', -1, 64), formatBytes(req.Memory), best.Name,
		strings.Join(failing, ", "))}
}

func formatSelector(selector map[string]string) string {
	keys := make([]string, 0, len(selector))
	for k := range selector {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + selector[k]
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func formatBytes(b float64) string {
	const mi = 1 << 20
	return strconv.FormatFloat(b/mi, 'f', -1, 64) + "Mi"
}

// --- HTTP -------------------------------------------------------------------------------------

const maxBodyBytes = 3 << 20 // the apiserver's own limit on a request body

type webhook struct {
	nodes  []NodeRecord // read-only once serving
	margin float64
}

func (h *webhook) validatePods(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "only POST", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		http.Error(w, fmt.Sprintf("Content-Type %q, want application/json", ct),
			http.StatusUnsupportedMediaType)
		return
	}
	var review AdmissionReview
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes)).Decode(&review); err != nil {
		http.Error(w, "cannot decode the AdmissionReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	if review.APIVersion != "admission.k8s.io/v1" || review.Kind != "AdmissionReview" || review.Request == nil {
		http.Error(w, "want an AdmissionReview admission.k8s.io/v1 with a request", http.StatusBadRequest)
		return
	}
	req := review.Request
	response := &AdmissionResponse{UID: req.UID}
	switch {
	case req.Kind.Kind != "Pod" || req.Object == nil:
		response.Allowed = true
		response.Result = &Status{Code: http.StatusOK, Message: "not a pod: nothing to decide"}
	default:
		d := decide(req.Object, h.nodes, h.margin)
		response.Allowed = d.Allowed
		if d.Allowed {
			response.Result = &Status{Code: http.StatusOK, Message: d.Message}
		} else {
			response.Result = &Status{Code: http.StatusForbidden, Reason: "Forbidden", Message: d.Message}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	out := AdmissionReview{APIVersion: review.APIVersion, Kind: review.Kind, Response: response}
	if err := json.NewEncoder(w).Encode(&out); err != nil {
		log.Printf("writing the answer to %s: %v", r.RemoteAddr, err)
	}
}

func healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintln(w, "ok")
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8443", "address to serve HTTPS on (port 0: any free port)")
	certFile := flag.String("cert", "", "serving certificate (PEM)")
	keyFile := flag.String("key", "", "its private key (PEM)")
	margin := flag.Float64("margin", 0.35, "isolation asked for beyond request/allocatable")
	flag.Parse()
	if *certFile == "" || *keyFile == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: go_peer --listen HOST:PORT --cert FILE --key FILE [--margin X]")
		os.Exit(2)
	}

	// Loaded here rather than by ServeTLS, so that a bad pair stops the program before it
	// says it serves.
	pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		log.Fatalf("loading the serving certificate: %v", err)
	}
	h := &webhook{nodes: defaultNodes(), margin: *margin}
	mux := http.NewServeMux()
	mux.HandleFunc("/validate-pods", h.validatePods)
	mux.HandleFunc("/healthz", healthz)
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}},
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       90 * time.Second,
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	log.Printf("go_peer serving https on %s (%d node records, margin %.2f)", ln.Addr(), len(h.nodes), h.margin)

	select {
	case err := <-served:
		log.Fatal(err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Printf("shutdown: %v", err)
	}
}

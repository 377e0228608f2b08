package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestQuantityParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"2", 2, true},
		{"500m", 0.5, true},
		{"1.5", 1.5, true},
		{"128Mi", 128 << 20, true},
		{"1Gi", 1 << 30, true},
		{"16G", 16e9, true},
		{"1e3", 1000, true},
		{"5E", 5e18, true},
		{"", 0, false},
		{"-1", 0, false},
		{"5x", 0, false},
		{"Gi", 0, false},
		{"1e", 0, false},
		{"Inf", 0, false},
	} {
		got, err := Quantity(tc.in).Parse()
		if (err == nil) != tc.ok || tc.ok && got != tc.want {
			t.Errorf("Quantity(%q).Parse() = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestEffectiveRequests(t *testing.T) {
	// Containers 1 + 0.25 cpu, 1Gi + 256Mi; the init container's 2 cpu is larger than their
	// sum, its 64Mi is not; then 100m and 10Mi of overhead: 2.1 cpu, 1290Mi.
	spec := PodSpec{
		Containers: []Container{
			{Resources: ResourceRequirements{Requests: map[string]Quantity{"cpu": "1", "memory": "1Gi"}}},
			{Resources: ResourceRequirements{Requests: map[string]Quantity{"cpu": "250m", "memory": "256Mi"}}},
		},
		InitContainers: []Container{
			{Resources: ResourceRequirements{Requests: map[string]Quantity{"cpu": "2", "memory": "64Mi"}}},
		},
		Overhead: map[string]Quantity{"cpu": "100m", "memory": "10Mi"},
	}
	got, err := effectiveRequests(&spec)
	if err != nil || got.CPU != 2.1 || got.Memory != 1290<<20 {
		t.Fatalf("effectiveRequests = %+v, %v; want 2.1 cpu, 1290Mi", got, err)
	}
	spec.Containers[1].Resources.Requests["cpu"] = "lots"
	if _, err := effectiveRequests(&spec); err == nil ||
		!strings.Contains(err.Error(), "spec.containers[1].resources.requests.cpu") {
		t.Fatalf("a bad quantity: error %v, want one naming spec.containers[1]...cpu", err)
	}
}

func pod(selector map[string]string, cpu, memory Quantity) *Pod {
	return &Pod{Spec: PodSpec{NodeSelector: selector, Containers: []Container{
		{Resources: ResourceRequirements{Requests: map[string]Quantity{"cpu": cpu, "memory": memory}}}}}}
}

func TestDecide(t *testing.T) {
	nodes := defaultNodes()
	zoneC := map[string]string{"node.pi0.io/pool": "general", "topology.kubernetes.io/zone": "zone-c"}
	for _, tc := range []struct {
		name    string
		pod     *Pod
		allowed bool
		phrase  string
	}{
		// node-3 (zone-c) runs hot: cpu isolation 0.12 < 0.35 + 1.4/15.89; node-4 has 0.65.
		{"zone-c passes on node-4", pod(zoneC, "1400m", "1Gi"), true, "fits node-4"},
		// 8 cores of 15.89 need 0.35 + 0.50 = 0.85 isolation: none has it; node-4 comes closest.
		{"too big for zone-c", pod(zoneC, "8", "1Gi"), false, "closest node-4: cpu isolation 0.65 < 0.85"},
		{"no node in zone-d", pod(map[string]string{"topology.kubernetes.io/zone": "zone-d"}, "1", "1Gi"),
			false, "no node among 5 matches the nodeSelector {topology.kubernetes.io/zone=zone-d}"},
		// No selector: node-1 (7.91 cores, isolation 0.45) takes 0.5 cpu: 0.35 + 0.063 <= 0.45.
		{"no selector", pod(nil, "500m", "512Mi"), true, "fits node-1"},
	} {
		d := decide(tc.pod, nodes, 0.35)
		if d.Allowed != tc.allowed || !strings.Contains(d.Message, tc.phrase) {
			t.Errorf("%s: allowed %v, %q; want %v and %q", tc.name, d.Allowed, d.Message, tc.allowed, tc.phrase)
		}
	}
}

func TestValidatePods(t *testing.T) {
	h := &webhook{nodes: defaultNodes(), margin: 0.35}
	body := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1",
	  "kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{"metadata":
	  {"generateName":"web-"},"spec":{"nodeSelector":{"topology.kubernetes.io/zone":"zone-d"},
	  "containers":[{"name":"c","resources":{"requests":{"cpu":"1","memory":"1Gi"}}}]}}}}`
	req := httptest.NewRequest(http.MethodPost, "/validate-pods", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.validatePods(rec, req)
	var out AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("HTTP %d, %v: %s", rec.Code, err, rec.Body.String())
	}
	r := out.Response
	if r == nil || r.UID != "u-1" || r.Allowed || r.Result == nil || r.Result.Code != 403 ||
		!strings.Contains(r.Result.Message, "zone-d") {
		t.Fatalf("answer %s: want uid u-1 denied with 403 naming zone-d", rec.Body.String())
	}

	for _, bad := range []struct {
		method, ctype, body string
		code                int
	}{
		{http.MethodGet, "application/json", "", http.StatusMethodNotAllowed},
		{http.MethodPost, "text/plain", body, http.StatusUnsupportedMediaType},
		{http.MethodPost, "application/json", "{not json", http.StatusBadRequest},
		{http.MethodPost, "application/json", `{"apiVersion":"v1","kind":"Pod"}`, http.StatusBadRequest},
		{http.MethodPost, "application/json", string(bytes.Repeat([]byte(" "), maxBodyBytes+1)), http.StatusBadRequest},
	} {
		req := httptest.NewRequest(bad.method, "/validate-pods", strings.NewReader(bad.body))
		req.Header.Set("Content-Type", bad.ctype)
		rec := httptest.NewRecorder()
		h.validatePods(rec, req)
		if rec.Code != bad.code {
			t.Errorf("%s %s %.20q: HTTP %d, want %d", bad.method, bad.ctype, bad.body, rec.Code, bad.code)
		}
	}
}

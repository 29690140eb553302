package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	vizv1 "github.com/vizops/viz-operator/api/v1alpha1"
)

// loadSamples reads the objects of a samples directory: the files its
// kustomization.yaml lists, in that order (else every *.yaml, sorted), each possibly
// holding several YAML documents.
func loadSamples(dir string) ([]*unstructured.Unstructured, error) {
	files, err := sampleFiles(dir)
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return nil, err
		}
		docs, err := parseObjects(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, f), err)
		}
		objs = append(objs, docs...)
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("no objects in %s", dir)
	}
	return objs, nil
}

func sampleFiles(dir string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if errors.Is(err, os.ErrNotExist) {
		matches, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			return nil, err
		}
		var files []string
		for _, m := range matches {
			files = append(files, filepath.Base(m))
		}
		sort.Strings(files)
		return files, nil
	}
	if err != nil {
		return nil, err
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "kustomization.yaml"), err)
	}
	if len(k.Resources) == 0 {
		return nil, fmt.Errorf("%s lists no resources", filepath.Join(dir, "kustomization.yaml"))
	}
	return k.Resources, nil
}

// parseObjects splits multi-document YAML and returns its objects, skipping empty
// documents (comments only, a trailing ---).
func parseObjects(data []byte) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetAPIVersion() == "" || u.GetKind() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("document %d: apiVersion, kind and metadata.name are required", i)
		}
		objs = append(objs, u)
	}
}

// expectedSkipped are the samples that are not chart requests, so must end Skipped
// with reason NotAVisualization rather than Succeeded.
var expectedSkipped = map[string]bool{"dosing-question": true}

// expectation is how a sample must end.
type expectation struct {
	skipped bool
	formats []string // each needs at least one artifact of that format
}

func expectationFor(u *unstructured.Unstructured) expectation {
	if expectedSkipped[u.GetName()] {
		return expectation{skipped: true}
	}
	formats, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "outputFormats")
	if len(formats) == 0 {
		formats = []string{string(vizv1.FormatPNG)}
	}
	return expectation{formats: formats}
}

func (e expectation) String() string {
	if e.skipped {
		return "Skipped (NotAVisualization)"
	}
	return "Succeeded with " + strings.Join(e.formats, "+")
}

// check says whether a finished request ended as expected, and if not, why.
func check(vr *vizv1.VisualizationRequest, e expectation) (bool, string) {
	st := vr.Status
	reason, msg := "", ""
	for _, c := range st.Conditions {
		if c.Type == vizv1.ConditionReady {
			reason, msg = c.Reason, strings.Join(strings.Fields(c.Message), " ")
		}
	}
	if !st.Phase.Finished() {
		phase := string(st.Phase)
		if phase == "" {
			phase = "Pending"
		}
		return false, fmt.Sprintf("still %s; expected %s", phase, e)
	}
	if e.skipped {
		if st.Phase != vizv1.PhaseSkipped || reason != vizv1.ReasonNotAVisualization {
			return false, fmt.Sprintf("ended %s (%s); expected %s", st.Phase, reason, e)
		}
		return true, ""
	}
	if st.Phase != vizv1.PhaseSucceeded {
		why := fmt.Sprintf("ended %s", st.Phase)
		if reason != "" {
			why += ": " + reason
		}
		if msg != "" {
			why += ": " + msg
		}
		return false, why
	}
	var missing []string
	for _, f := range e.formats {
		if !slices.ContainsFunc(st.Artifacts, func(a vizv1.ArtifactStatus) bool { return strings.EqualFold(a.Format, f) }) {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return false, fmt.Sprintf("Succeeded but has no %s artifact", strings.Join(missing, " or "))
	}
	return true, ""
}

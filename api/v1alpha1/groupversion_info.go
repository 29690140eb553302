// Package v1alpha1 contains the vizops API: VisualizationRequest (a chart to make) and
// SandboxPool (where model-generated code runs).
// +kubebuilder:object:generate=true
// +groupName=viz.vizops.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of these objects.
	GroupVersion = schema.GroupVersion{Group: "viz.vizops.io", Version: "v1alpha1"}

	// SchemeBuilder adds the types of this group-version to a scheme. It depends on
	// apimachinery only (controller-runtime's scheme.Builder is deprecated for API
	// packages, which importers should get with few dependencies).
	SchemeBuilder = &schemeBuilder{}

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// schemeBuilder collects the types each file of the package registers.
type schemeBuilder runtime.SchemeBuilder

// AddToScheme adds every registered type to s.
func (b *schemeBuilder) AddToScheme(s *runtime.Scheme) error {
	return (*runtime.SchemeBuilder)(b).AddToScheme(s)
}

// Register adds objects to the group-version.
func (b *schemeBuilder) Register(objects ...runtime.Object) {
	(*runtime.SchemeBuilder)(b).Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(GroupVersion, objects...)
		metav1.AddToGroupVersion(s, GroupVersion)
		return nil
	})
}

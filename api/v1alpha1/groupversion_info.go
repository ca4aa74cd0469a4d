// Package v1alpha1 contains the TenantIdentity API of the identity.signet.dev group.
// +kubebuilder:object:generate=true
// +groupName=identity.signet.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is group version used to register these objects.
	GroupVersion = schema.GroupVersion{Group: "identity.signet.dev", Version: "v1alpha1"}

	// SchemeBuilder is used to add go types to the GroupVersionKind scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types in this group-version to the given scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers TenantIdentity and its list. The API package
// depends only on apimachinery, so anyone can import it.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &TenantIdentity{}, &TenantIdentityList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

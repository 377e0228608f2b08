// The Kubernetes resources Pi0 reads and writes, named as the REST API names them.
#pragma once

#include <string>
#include <string_view>

namespace pi0::kube {

struct ResourceType {
  std::string group;    // "" for the core group
  std::string version;  // "v1"
  std::string plural;   // "configmaps": the path segment
  std::string kind;     // "ConfigMap"
  bool namespaced = true;

  std::string apiVersion() const { return group.empty() ? version : group + "/" + version; }
  // "configmaps" or "deployments.apps": how kubectl and RBAC name the resource.
  std::string qualifiedName() const { return group.empty() ? plural : plural + "." + group; }
};

namespace resources {
inline const ResourceType kNamespaces{"", "v1", "namespaces", "Namespace", false};
inline const ResourceType kNodes{"", "v1", "nodes", "Node", false};
inline const ResourceType kPods{"", "v1", "pods", "Pod", true};
inline const ResourceType kConfigMaps{"", "v1", "configmaps", "ConfigMap", true};
inline const ResourceType kSecrets{"", "v1", "secrets", "Secret", true};
inline const ResourceType kServices{"", "v1", "services", "Service", true};
inline const ResourceType kEvents{"", "v1", "events", "Event", true};
inline const ResourceType kDeployments{"apps", "v1", "deployments", "Deployment", true};
inline const ResourceType kStatefulSets{"apps", "v1", "statefulsets", "StatefulSet", true};
inline const ResourceType kReplicaSets{"apps", "v1", "replicasets", "ReplicaSet", true};
inline const ResourceType kHorizontalPodAutoscalers{"autoscaling", "v1", "horizontalpodautoscalers",
                                                    "HorizontalPodAutoscaler", true};
// Create-only: the apiserver answers a TokenReview in the response and stores nothing.
inline const ResourceType kTokenReviews{"authentication.k8s.io", "v1", "tokenreviews",
                                        "TokenReview", false};
inline const ResourceType kLeases{"coordination.k8s.io", "v1", "leases", "Lease", true};
// discovery.k8s.io/v1beta1 (Kubernetes 1.20); 1.21 and later serve v1, and 1.25 removed
// v1beta1: read them at the version fleet::endpointSliceType() finds.
inline const ResourceType kEndpointSlices{"discovery.k8s.io", "v1beta1", "endpointslices",
                                          "EndpointSlice", true};
inline const ResourceType kChannels{"stability.pi0.io", "v1alpha1", "channels", "Channel", true};
inline const ResourceType kShutdownMatrices{"stability.pi0.io", "v1alpha1", "shutdownmatrices",
                                            "ShutdownMatrix", false};
inline const ResourceType kGatePolicies{"stability.pi0.io", "v1alpha1", "gatepolicies",
                                        "GatePolicy", false};
}  // namespace resources

}  // namespace pi0::kube

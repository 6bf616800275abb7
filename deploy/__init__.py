"""Production deployment: Kubernetes manifests (``k8s/``), the operators' CRD schemas
(``crds/``) and the generator that derives the per-service manifests from the code."""

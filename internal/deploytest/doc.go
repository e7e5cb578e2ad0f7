// Package deploytest checks the deployment files against the configuration
// contract: the Dockerfile, deploy/compose.yaml and its herd configuration,
// the Kubernetes manifests in deploy/k8s and the systemd unit in
// deploy/systemd, and each docker run command that README.md, the
// Dockerfile and deploy/herd.docker.yaml document. Every herd configuration
// they carry must pass config.Parse, and the names, addresses, ports, paths
// and secrets that the files share must agree. It holds only tests.
package deploytest

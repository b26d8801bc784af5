// Package consulapi serves a subset of Consul's HTTP API on a registry
// node, so services that register with a Consul client (Go's
// github.com/hashicorp/consul/api, Spring Cloud Consul, Envoy and Nomad
// integrations) use Bulwark's registry unchanged.
//
// It is translation only: every write goes through the node's exported
// methods (registry.Node.RegisterInstance, RenewInstance, …), so through the
// same Raft log and leader-held leases as the node's own API, and every
// read comes from the node's replicated catalog.
//
// # Mapping
//
//	Consul                                   Bulwark registry
//	service Name / ID (ID defaults to Name)  service / instance ID
//	Address:Port                             Address "http://Address:Port"
//	Meta                                     metadata (keys as given)
//	Tags                                     metadata "consul.tags" (JSON list)
//	TTL check                                the lease; TTL = check TTL
//	check pass (or update passing)           lease renewal; suspect → up
//	check warn / fail                        lease renewal; up → suspect
//	check status passing                     up; anything else is critical
//	initial check Status (default critical)  registered suspect until the first pass
//
// A registration must carry exactly one TTL check: the registry has no
// prober, and a service without a check would never leave the catalog when
// its process dies. Script, HTTP, TCP, gRPC, Docker and alias checks are
// refused with 400 and a message saying so.
//
// # Concurrency
//
// An API holds no state of its own beyond its options: handlers run on the
// node's HTTP server goroutines and call the node, which does its own
// locking. Blocking queries end with the request or when the node closes.
package consulapi

package consulapi

import (
	"fmt"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/registry"
)

// The response shapes below follow Consul's JSON (the fields its Go client
// reads); every instance is reported as running on a node of its own,
// named after its host, since the registry has no agents.

type weights struct {
	Passing int
	Warning int
}

type catalogService struct {
	ID                       string
	Node                     string
	Address                  string
	Datacenter               string
	TaggedAddresses          map[string]string
	NodeMeta                 map[string]string
	ServiceID                string
	ServiceName              string
	ServiceAddress           string
	ServiceTags              []string
	ServiceMeta              map[string]string
	ServicePort              int
	ServiceWeights           weights
	ServiceEnableTagOverride bool
	CreateIndex              uint64
	ModifyIndex              uint64
}

type node struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	Meta            map[string]string
	CreateIndex     uint64
	ModifyIndex     uint64
}

type agentServiceOut struct {
	ID                string
	Service           string
	Tags              []string
	Meta              map[string]string
	Port              int
	Address           string
	Weights           weights
	EnableTagOverride bool
	Datacenter        string
	CreateIndex       uint64
	ModifyIndex       uint64
}

type healthCheck struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string
	ServiceTags []string
	Type        string
	CreateIndex uint64
	ModifyIndex uint64
}

type serviceEntry struct {
	Node    node
	Service agentServiceOut
	Checks  []healthCheck
}

// status is the Consul check status of a registry health state: only up
// is passing.
func status(h bulwark.Health) string {
	if h == bulwark.HealthUp {
		return "passing"
	}
	return "critical"
}

func (a *API) catalogEntry(inst registry.InstanceInfo) catalogService {
	host, port := hostPort(inst.Address)
	return catalogService{
		ID: "", Node: host, Address: host, Datacenter: a.opts.Datacenter,
		TaggedAddresses: map[string]string{}, NodeMeta: map[string]string{},
		ServiceID: inst.ID, ServiceName: inst.Service, ServiceAddress: host, ServicePort: port,
		ServiceTags: tagsOf(inst), ServiceMeta: serviceMeta(inst), ServiceWeights: weights{1, 1},
		CreateIndex: inst.RegisterIndex, ModifyIndex: inst.ModifyIndex,
	}
}

func (a *API) healthEntry(inst registry.InstanceInfo) serviceEntry {
	host, port := hostPort(inst.Address)
	tags := tagsOf(inst)
	checkID := inst.Metadata[metaCheckID]
	if checkID == "" {
		checkID = defaultCheckID(inst.ID)
	}
	checkName := inst.Metadata[metaCheckName]
	if checkName == "" {
		checkName = fmt.Sprintf("Service '%s' check", inst.Service)
	}
	return serviceEntry{
		Node: node{Node: host, Address: host, Datacenter: a.opts.Datacenter,
			TaggedAddresses: map[string]string{}, Meta: map[string]string{},
			CreateIndex: inst.RegisterIndex, ModifyIndex: inst.ModifyIndex},
		Service: agentServiceOut{ID: inst.ID, Service: inst.Service, Tags: tags, Meta: serviceMeta(inst),
			Port: port, Address: host, Weights: weights{1, 1}, Datacenter: a.opts.Datacenter,
			CreateIndex: inst.RegisterIndex, ModifyIndex: inst.ModifyIndex},
		Checks: []healthCheck{{Node: host, CheckID: checkID, Name: checkName, Status: status(inst.Health),
			Output:    "registry lease: " + inst.Health.String(),
			ServiceID: inst.ID, ServiceName: inst.Service, ServiceTags: tags, Type: "ttl",
			CreateIndex: inst.RegisterIndex, ModifyIndex: inst.ModifyIndex}},
	}
}

// Command faultydistributed is the distributed plugin with its workers'
// tasks wrapped in internal/attacks (distributed.Main):
// TestAttacksOnDistributed builds it as a plugin named distributed in a
// plugin directory of its own, so that the attacks run in the worker
// processes the NATS work queue feeds. It is never installed.
package main

import (
	"github.com/wslab/wslab/internal/attacks"
	"github.com/wslab/wslab/internal/distributed"
)

func main() { distributed.Main(attacks.Wrap) }

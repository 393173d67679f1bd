// Package wire is the data channel of the wslab protocol: the frames that
// carry tasks and replies between a host and a strategy plugin (and
// between a plugin and worker processes of its own, or over a message bus),
// the task codec they all share, the receiving end (ServeTasks), and the
// control service's messages in their Go form.
//
// A strategy written with package plugin needs none of it: Serve speaks
// it. A strategy that hands tasks on to processes or machines of its own
// speaks it as the multiproc and distributed strategies do: TaskMessage
// and ResultOf on the sending end, ServeTasks (or TaskOf, TaskContext and
// ResponseMessage) on the receiving end. It changes only with
// plugin.ProtocolVersion.
package wire

// DataFDEnv names the environment variable that tells a process which file
// descriptor is its data channel (FileConn). The host sets it for a
// plugin; a plugin started any other way has no data channel and says so.
const DataFDEnv = "WSLAB_DATA_FD"

package socketcan

import (
	"fmt"
	"time"

	"github.com/csop/tbox/can"
)

// Kind says what an Event reports.
type Kind uint8

const (
	// Down: the interface went down or disappeared; the Conn is reopening.
	// Frames sent on the bus until the matching Up are not seen.
	Down Kind = iota + 1
	// Up: the socket is bound and reading again after a Down.
	Up
	// TxTimeout: the controller could not send a frame in time (CAN_ERR_TX_TIMEOUT).
	TxTimeout
	// LostArbitration: a transmission lost arbitration (CAN_ERR_LOSTARB);
	// Event.ArbitrationBit says in which bit.
	LostArbitration
	// ControllerProblem: an unspecified controller problem (CAN_ERR_CRTL
	// without a status bit).
	ControllerProblem
	// Overflow: the controller's RX or TX buffer overflowed
	// (CAN_ERR_CRTL_RX_OVERFLOW, CAN_ERR_CRTL_TX_OVERFLOW).
	Overflow
	// ErrorWarning: an error counter reached the warning level (96).
	ErrorWarning
	// ErrorPassive: an error counter reached the passive level (128).
	ErrorPassive
	// ErrorActive: the controller is back to error-active.
	ErrorActive
	// ProtocolViolation: a bit, form or stuff error (CAN_ERR_PROT).
	ProtocolViolation
	// TransceiverError: a wiring problem reported by the transceiver (CAN_ERR_TRX).
	TransceiverError
	// NoAck: a frame was sent but nobody acknowledged it (CAN_ERR_ACK).
	NoAck
	// BusOff: the controller went bus-off (CAN_ERR_BUSOFF).
	BusOff
	// BusError: a bus error (CAN_ERR_BUSERROR).
	BusError
	// Restarted: the controller restarted after bus-off (CAN_ERR_RESTARTED).
	Restarted

	numKinds = iota + 1
)

var kindNames = [numKinds]string{
	Down: "down", Up: "up", TxTimeout: "tx-timeout", LostArbitration: "lost-arbitration",
	ControllerProblem: "controller-problem", Overflow: "overflow", ErrorWarning: "error-warning",
	ErrorPassive: "error-passive", ErrorActive: "error-active", ProtocolViolation: "protocol-violation",
	TransceiverError: "transceiver-error", NoAck: "no-ack", BusOff: "bus-off", BusError: "bus-error",
	Restarted: "restarted",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Error classes in the can_id of an error frame (linux/can/error.h).
const (
	ErrClassTxTimeout  = 0x00000001 // CAN_ERR_TX_TIMEOUT
	ErrClassLostArb    = 0x00000002 // CAN_ERR_LOSTARB: data[0] = bit number
	ErrClassController = 0x00000004 // CAN_ERR_CRTL: data[1] = controller status
	ErrClassProtocol   = 0x00000008 // CAN_ERR_PROT: data[2] = type, data[3] = location
	ErrClassTrx        = 0x00000010 // CAN_ERR_TRX: data[4] = transceiver status
	ErrClassAck        = 0x00000020 // CAN_ERR_ACK
	ErrClassBusOff     = 0x00000040 // CAN_ERR_BUSOFF
	ErrClassBusError   = 0x00000080 // CAN_ERR_BUSERROR
	ErrClassRestarted  = 0x00000100 // CAN_ERR_RESTARTED
	ErrClassCounters   = 0x00000200 // CAN_ERR_CNT: data[6] = TX, data[7] = RX error counter

	// ErrClassAll selects every error class (CAN_ERR_MASK), the default of
	// WithErrorFrames.
	ErrClassAll = can.KernelEFFMask
)

// Controller status in data[1] of a CAN_ERR_CRTL error frame.
const (
	CtrlRxOverflow = 0x01 // CAN_ERR_CRTL_RX_OVERFLOW
	CtrlTxOverflow = 0x02 // CAN_ERR_CRTL_TX_OVERFLOW
	CtrlRxWarning  = 0x04 // CAN_ERR_CRTL_RX_WARNING
	CtrlTxWarning  = 0x08 // CAN_ERR_CRTL_TX_WARNING
	CtrlRxPassive  = 0x10 // CAN_ERR_CRTL_RX_PASSIVE
	CtrlTxPassive  = 0x20 // CAN_ERR_CRTL_TX_PASSIVE
	CtrlActive     = 0x40 // CAN_ERR_CRTL_ACTIVE
)

// Event is a change of the bus or the interface: a decoded error frame, or
// the interface going down and coming back.
type Event struct {
	Time time.Time // kernel receive time of the error frame; local time for Down/Up
	Bus  string
	Kind Kind
	// Class holds the error class bits of the error frame the event was
	// decoded from (ErrClass...); zero for Down and Up.
	Class uint32
	// Data is the error frame's payload: data[1] the controller status,
	// data[2..3] protocol error type and location, data[4] transceiver
	// status, data[6..7] the TX and RX error counters.
	Data [can.MaxDataLen]byte
	// Err is why the interface went Down.
	Err error
}

// ArbitrationBit returns the bit in which arbitration was lost (0 when unknown).
func (e *Event) ArbitrationBit() uint8 { return e.Data[0] }

// Counters returns the controller's TX and RX error counters, and whether the
// frame carried them.
func (e *Event) Counters() (tx, rx uint8, ok bool) {
	return e.Data[6], e.Data[7], e.Class&ErrClassCounters != 0
}

func (e Event) String() string {
	switch {
	case e.Kind == Down && e.Err != nil:
		return fmt.Sprintf("%s %s: %v", e.Bus, e.Kind, e.Err)
	case e.Class != 0:
		return fmt.Sprintf("%s %s (class 0x%03X data % X)", e.Bus, e.Kind, e.Class, e.Data[:])
	}
	return fmt.Sprintf("%s %s", e.Bus, e.Kind)
}

// ErrorEvents decodes an error frame into the events it reports, in the order
// of the error class bits; one frame often reports several (a controller
// status change with bus-off, say). A frame that is not an error frame, or
// reports no known class, yields none.
func ErrorEvents(f *can.Frame) []Event {
	if !f.IsError() {
		return nil
	}
	base := Event{Time: f.Time, Bus: f.Bus, Class: f.ID}
	copy(base.Data[:], f.Data[:can.MaxDataLen])
	// The kinds first, the events built once at the end: an add that
	// appended a whole Event was inlined at each of its 13 calls.
	var kinds [16]Kind
	n := 0
	add := func(k Kind) {
		kinds[n] = k
		n++
	}
	c := f.ID
	if c&ErrClassTxTimeout != 0 {
		add(TxTimeout)
	}
	if c&ErrClassLostArb != 0 {
		add(LostArbitration)
	}
	if c&ErrClassController != 0 {
		st := base.Data[1]
		if st&(CtrlRxOverflow|CtrlTxOverflow) != 0 {
			add(Overflow)
		}
		if st&(CtrlRxWarning|CtrlTxWarning) != 0 {
			add(ErrorWarning)
		}
		if st&(CtrlRxPassive|CtrlTxPassive) != 0 {
			add(ErrorPassive)
		}
		if st&CtrlActive != 0 {
			add(ErrorActive)
		}
		if st&0x7F == 0 {
			add(ControllerProblem)
		}
	}
	if c&ErrClassProtocol != 0 {
		add(ProtocolViolation)
	}
	if c&ErrClassTrx != 0 {
		add(TransceiverError)
	}
	if c&ErrClassAck != 0 {
		add(NoAck)
	}
	if c&ErrClassBusOff != 0 {
		add(BusOff)
	}
	if c&ErrClassBusError != 0 {
		add(BusError)
	}
	if c&ErrClassRestarted != 0 {
		add(Restarted)
	}
	if n == 0 {
		return nil
	}
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = base
		evs[i].Kind = kinds[i]
	}
	return evs
}

//! FLV audio and video tag bodies (Adobe FLV 10.1 §E.4, Enhanced RTMP) into
//! strom's canonical tracks and frames, without I/O.

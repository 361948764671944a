//! RTMP (Adobe RTMP 1.0, with Enhanced RTMP's additions): handshake, chunk
//! stream, AMF0/AMF3 commands and server/client sessions, without I/O.

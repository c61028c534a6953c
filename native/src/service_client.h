// service_client.h - the client side of a usrbio service (service_client.cc): discovery of a
// running service for a mount point and the service-backed iovs and rings.
#pragma once
#include <memory>

#include "backend.h"

namespace usrbio {

class ServiceConn;

// Which service serves local directory mp: 0 and *out (null: the embedded agent), or -errno
// when an explicitly named service cannot be used. See usrbio_ext.h for the precedence.
int service_for(const char *mp, std::shared_ptr<ServiceConn> *out);

int service_iovcreate(const std::shared_ptr<ServiceConn> &c, hf3fs_iov *iov, const char *mp, size_t size,
                      size_t block_size, int numa);
int service_iovopen(const std::shared_ptr<ServiceConn> &c, hf3fs_iov *iov, const uint8_t id[16], const char *mp,
                    size_t size, size_t block_size, int numa);
int service_iorcreate(const std::shared_ptr<ServiceConn> &c, hf3fs_ior *ior, const char *mp, const RingParams &p);

// A registered file is going away (~RegFd): drop its registration with the service.
void service_remove_file(ServiceConn &c, uint64_t handle);

}  // namespace usrbio

// What /proc says about a process (a server child, in fault tests).
#ifndef KNNMEM_TESTS_SUPPORT_PROC_STATUS_H_
#define KNNMEM_TESTS_SUPPORT_PROC_STATUS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace knnmem::testing {

// A field of /proc/PID/status given in kB ("VmRSS", "VmHWM"), in bytes; -1
// when absent.
int64_t StatusBytes(pid_t pid, const std::string& field);
// The descriptors `pid` has open (entries of /proc/PID/fd).
int OpenDescriptors(pid_t pid);

}  // namespace knnmem::testing

#endif  // KNNMEM_TESTS_SUPPORT_PROC_STATUS_H_

#include "base/background_queue.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace knnmem {

void SetThisThreadNice(int nice) {
  // PRIO_PROCESS with a thread id sets that thread's nice value alone.
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), nice);
}

}  // namespace knnmem

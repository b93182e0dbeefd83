/* fault.h - fault points: where the reliability tests kill a process on purpose.
 *
 * pw_fault_point("after_rename") marks a step of the pipeline or of the consumer.  In
 * test builds (PW_TEST_TASKS) the environment can name one step to die at:
 *   PW_FAULT_POINT=task:STEP    the process reaching STEP is killed (SIGKILL), which in
 *                               a task process is what the OOM killer does;
 *   PW_FAULT_POINT=worker:STEP  the consumer is killed (from a task process: its parent,
 *                               which takes the task process with it), as kill -9 of a
 *                               replica does.
 * PW_FAULT_ONCE=FILE makes it happen once across processes and restarts: the point fires
 * only if it can create FILE (O_EXCL), so the redelivery that follows runs through.
 * In other builds the function does nothing.  Steps in use (tests/reliability/):
 *   consumer: after_receive, before_ack;  task: under_lock, mid_scroll, mid_compute,
 *   after_rename, before_commit, after_commit;  backfill (with task:, the backfill
 *   process itself): backfill_rows_committed, backfill_published
 *   (tests/integration/backfill/). */
#ifndef PW_FAULT_H
#define PW_FAULT_H

void pw_fault_point(const char *step);

#endif

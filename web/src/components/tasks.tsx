// Long operations (tasks: clone, migration, evacuation, a snapshot of a running VM, a
// managed save, a volume copy): a panel at the bottom of every page with each task's
// progress, live from the event stream (`task_progress`, `task_done`), a cancel button
// while it runs, and its result in words. Tasks the user started here and tasks
// started anywhere else (CLI, another browser) show alike.

import { api, seg } from '../api/client';
import type { Task } from '../api/types';
import { t, type Key } from '../i18n';
import { can } from '../session';
import { createStore, useStore } from '../store';
import { Bar } from './bits';
import { describeError, toastError } from './feedback';

/** The tasks shown, by id, in the order they became known. */
export const tasks = createStore<Map<string, Task>>(new Map());
/** Ended tasks the user closed. */
const dismissed = new Set<string>();

/** A task started or changed (202 answer, event, list). */
export function trackTask(task: Task): void {
  if (dismissed.has(task.id)) return;
  const m = new Map(tasks.get());
  m.set(task.id, task);
  tasks.set(m);
}

/** After (re)connecting: the running tasks, and what became of the ones shown. */
export async function loadTasks(): Promise<void> {
  try {
    const list = await api.get<Task[]>('/tasks');
    const known = tasks.get();
    const m = new Map<string, Task>();
    for (const task of list) {
      if (dismissed.has(task.id)) continue;
      if (!task.ended || known.has(task.id)) m.set(task.id, task);
    }
    // Shown tasks the server no longer lists (ended too long ago) stay as they were.
    for (const [id, task] of known) if (!m.has(id)) m.set(id, task);
    tasks.set(m);
  } catch {
    // The stream state shows connection trouble; keep what is shown.
  }
}

export function clearTasks(): void {
  tasks.set(new Map());
}

function dismiss(id: string) {
  dismissed.add(id);
  const m = new Map(tasks.get());
  m.delete(id);
  tasks.set(m);
}

async function cancel(task: Task) {
  try {
    trackTask(await api.del<Task>(`/tasks/${seg(task.id)}`));
  } catch (e) {
    toastError(e);
  }
}

/** What a task is, for people. */
export function taskTitle(task: Task): string {
  // A clone's target reads `-> NAME`.
  return t(`task.kind.${task.kind}` as Key, { target: task.target.replace(/^-> /, ''), host: task.host_id });
}

function TaskItem({ task }: { task: Task }) {
  const running = task.state === 'running' || task.state === 'cancelling';
  const pct = task.percent ?? (task.bytes_total ? ((task.bytes_done ?? 0) * 100) / task.bytes_total : null);
  const err = task.error ? describeError(Object.assign(new Error(task.error.message), { status: 0, code: task.error.code })) : null;
  return (
    <li class={`task task-${task.state}`} data-testid="task" data-task={task.id} data-kind={task.kind} data-state={task.state}>
      <div class="task-head">
        <strong>{taskTitle(task)}</strong>
        <span class="task-state" role="status">
          {t(`task.state.${task.state}` as Key)}
          {task.migration?.phase ? ` · ${task.migration.phase}` : ''}
        </span>
      </div>
      {running &&
        (pct !== null ? (
          <Bar value={pct} label={taskTitle(task)} level="ok" />
        ) : (
          <div class="bar indeterminate" role="progressbar" aria-label={taskTitle(task)}>
            <div class="bar-fill" />
          </div>
        ))}
      {task.state === 'failed' && (
        <p class="task-error server-text" data-testid="task-error">
          {task.error?.message ?? err?.title}
        </p>
      )}
      {task.state === 'succeeded' && <p class="task-result">{t('task.succeeded_text')}</p>}
      {task.state === 'cancelled' && <p class="task-result">{t(task.cancel === 'undo' ? 'task.cancelled_undo' : 'task.cancelled_abort')}</p>}
      <div class="buttons left">
        {/* Held anywhere, not per task: a task names its VM by UUID, and the list only
            shows a scoped caller the tasks of VMs it may see. */}
        {task.state === 'running' && task.cancel !== 'none' && can('lifecycle') && (
          <button type="button" class="small danger-outline" onClick={() => cancel(task)} data-action="cancel-task">
            {t('task.cancel')}
          </button>
        )}
        {!running && (
          <button type="button" class="small" onClick={() => dismiss(task.id)} aria-label={`${t('common.close')}: ${taskTitle(task)}`}>
            {t('common.close')}
          </button>
        )}
      </div>
    </li>
  );
}

export function TaskPanel() {
  const m = useStore(tasks);
  if (m.size === 0) return null;
  const list = [...m.values()];
  return (
    <section class="task-panel" aria-label={t('task.panel')} data-testid="task-panel">
      <h2 class="visually-hidden">{t('task.panel')}</h2>
      <ul>
        {list.map((task) => (
          <TaskItem key={task.id} task={task} />
        ))}
      </ul>
    </section>
  );
}

// Type-checked with `tsc --noEmit -p tsconfig.json` against the installed package's
// declarations (tests/browser/test_npm_package.py): the API a TypeScript app uses.
import {
  createTidings,
  TidingsError,
  type Notification,
  type TidingsChange,
  type TidingsState,
} from "@tidings/client";
import type { TidingsBellProps } from "@tidings/client/react";
import { STRINGS } from "@tidings/client/bell";

const client = createTidings({
  baseUrl: "https://tidings.example.com",
  getToken: async () => "a-token",
  pageSize: 20,
  backoff: { initial: 500 },
});

const unsubscribe: () => void = client.subscribe((state: TidingsState, change: TidingsChange) => {
  const unseen: number = state.unseen;
  const first: Notification | undefined = state.items[0];
  if (change.type === "notification") console.log(change.notification.message, unseen, first?.id);
  if (change.type === "error") console.log(change.error.code, change.action);
});

async function use(): Promise<void> {
  try {
    await client.markRead([1, 2]);
    const { items, hasMore } = await client.list({ category: "billing", limit: 5 });
    console.log(items.length, hasMore, (await client.counts()).unread, client.baseUrl);
  } catch (error) {
    if (error instanceof TidingsError) console.log(error.status, error.code);
  }
  unsubscribe();
  client.close();
}

const props: TidingsBellProps = { baseUrl: "https://tidings.example.com", theme: "dark" };
console.log(use, props, STRINGS);

<?php

namespace Tidings\Laravel\Tests;

use Illuminate\Support\Facades\DB;
use Tidings\Laravel\Tests\Fixtures\AppNotification;

/** The model observer of docs/api.md ("From Laravel"), as the guide shows it. */
class ObserverTest extends TestCase
{
    protected function setUp(): void
    {
        parent::setUp();
        if (! class_exists('App\Models\Notification', false)) {
            class_alias(AppNotification::class, 'App\Models\Notification');
        }
        require_once __DIR__ . '/Fixtures/NotificationObserver.php';
        DB::statement('CREATE TABLE app_notifications (id INTEGER PRIMARY KEY, user_id TEXT, message TEXT, link TEXT)');
        AppNotification::observe(\App\Observers\NotificationObserver::class);
    }

    protected function tearDown(): void
    {
        AppNotification::flushEventListeners();
        parent::tearDown();
    }

    public function testTheObserverPublishesAfterTheCommitOnce(): void
    {
        $row = DB::transaction(function () {
            $row = AppNotification::create(['id' => 1, 'user_id' => 'laravel-observer', 'message' => 'Order shipped', 'link' => '/orders/7']);
            $this->assertSame([], $this->listed('laravel-observer'), 'published before the commit');

            return $row;
        });
        (new \App\Observers\NotificationObserver())->created($row); // run again: the same key
        $listed = $this->listed('laravel-observer');
        $this->assertSame([['Order shipped', '/orders/7']], array_map(function ($n) {
            return [$n['message'], $n['link']];
        }, $listed));
    }

    public function testARolledBackRowPublishesNothing(): void
    {
        // Ids of their own: the key is the row's id, and each test starts with an empty table.
        DB::beginTransaction();
        AppNotification::create(['id' => 2, 'user_id' => 'laravel-observer-rb', 'message' => 'never']);
        DB::rollBack();
        AppNotification::create(['id' => 3, 'user_id' => 'laravel-observer-rb', 'message' => 'sentinel']);

        $this->assertSame(['sentinel'], array_column($this->listed('laravel-observer-rb'), 'message'));
    }
}

<?php

namespace Tidings\Laravel\Tests;

use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Notification;
use Tidings\Laravel\Facades\Tidings;
use Tidings\Laravel\Tests\Fixtures\CommentAdded;
use Tidings\Laravel\Tests\Fixtures\CommentPosted;
use Tidings\Laravel\Tests\Fixtures\InvoicePaid;
use Tidings\Laravel\Tests\Fixtures\Member;
use Tidings\Laravel\Tests\Fixtures\User;

/** The `tidings` channel through Laravel's own notification sender, against a real tidings. */
class ChannelTest extends TestCase
{
    public function testNotifyReachesTheUsersStream(): void
    {
        // tests/integrations/test_laravel.py holds this user's stream open and reads it.
        $user = new User(['id' => 'laravel-invoice']);
        // --8<-- [start:notify]
        $user->notify(new InvoicePaid(7));
        // --8<-- [end:notify]

        $listed = $this->listed('laravel-invoice');
        $this->assertCount(1, $listed);
        $this->assertSame('Invoice #7 was paid', $listed[0]['message']);
        $this->assertSame('https://app.example/invoices/7', $listed[0]['link']);
        $this->assertSame('invoice.paid', $listed[0]['kind']);
        $this->assertSame(['invoice' => 7], $listed[0]['data']);
    }

    public function testTheNotificationIdIsTheIdempotencyKeyPerUser(): void
    {
        $user = new User(['id' => 'laravel-once']);
        $other = new User(['id' => 'laravel-once-other']);
        $notification = new InvoicePaid(8);
        $notification->id = 'invoice-8-paid';
        $user->notify($notification);
        $user->notify($notification); // a retried job: the same notification, the same id
        Notification::send([$user, $other], $notification); // and to two users at once

        $this->assertCount(1, $this->listed('laravel-once'));
        $this->assertCount(1, $this->listed('laravel-once-other'));
    }

    public function testAStableKeyFromToTidingsPublishesOnceWhenTheObserverRunsTwice(): void
    {
        $user = new User(['id' => 'laravel-stable']);
        $other = new User(['id' => 'laravel-stable-other']);
        // Two sends for one event, each with Laravel's own new notification id.
        // --8<-- [start:twice]
        $user->notify(new CommentAdded(5));
        $user->notify(new CommentAdded(5)); // the observer ran again: stored once
        // --8<-- [end:twice]
        Notification::send([$user, $other], new CommentAdded(5)); // the key is per user

        $this->assertSame(['New comment #5'], array_column($this->listed('laravel-stable'), 'message'));
        $this->assertCount(1, $this->listed('laravel-stable-other'));
    }

    public function testToArrayAndTheRoutingMethodAreUsed(): void
    {
        (new Member('ada'))->notify(new CommentPosted());
        Notification::route('tidings', 'laravel-anonymous')->notify(new CommentPosted());

        $this->assertSame(['New comment on your post'], array_column($this->listed('member-ada'), 'message'));
        $this->assertSame('comment', $this->listed('laravel-anonymous')[0]['kind']);
    }

    public function testItIsSentAfterTheTransactionCommits(): void
    {
        $user = new User(['id' => 'laravel-commit']);
        DB::transaction(function () use ($user) {
            $user->notify(new InvoicePaid(9));
            $this->assertSame([], $this->listed('laravel-commit'), 'published before the commit');
        });
        $this->assertCount(1, $this->listed('laravel-commit'));
    }

    public function testARolledBackTransactionSendsNothing(): void
    {
        $user = new User(['id' => 'laravel-rollback']);
        DB::beginTransaction();
        $user->notify(new InvoicePaid(10));
        DB::rollBack();
        Tidings::publish('laravel-rollback', 'sentinel');

        $this->assertSame(['sentinel'], array_column($this->listed('laravel-rollback'), 'message'));
    }
}

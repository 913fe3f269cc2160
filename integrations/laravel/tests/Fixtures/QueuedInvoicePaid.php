<?php

namespace Tidings\Laravel\Tests\Fixtures;

use Illuminate\Bus\Queueable;
use Illuminate\Contracts\Queue\ShouldQueue;

/** InvoicePaid sent from the queue (as `class InvoicePaid extends Notification implements ShouldQueue`). */
class QueuedInvoicePaid extends InvoicePaid implements ShouldQueue
{
    use Queueable;
}

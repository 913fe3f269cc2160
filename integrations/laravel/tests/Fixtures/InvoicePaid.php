<?php

namespace Tidings\Laravel\Tests\Fixtures;

// --8<-- [start:notification]
use Illuminate\Notifications\Notification;

class InvoicePaid extends Notification
{
    /** @var int */
    public $invoice;

    public function __construct(int $invoice)
    {
        $this->invoice = $invoice;
    }

    public function via($notifiable): array
    {
        return ['tidings'];
    }

    public function toTidings($notifiable): array
    {
        return [
            'message' => "Invoice #{$this->invoice} was paid",
            'link' => "https://app.example/invoices/{$this->invoice}",
            'kind' => 'invoice.paid',
            'data' => ['invoice' => $this->invoice],
        ];
    }
}
// --8<-- [end:notification]
